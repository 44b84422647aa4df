// Box-and-sphere folds (a 2D cousin of the Mandelbox), orbit-trapped against circles and lines.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 3.0, kdP0.x);
    vec2 p0 = p;
    float scale = mix(-2.2, 2.2, kdP0.y);
    scale += sign(scale) * 0.6;
    float dr = 1.0, trap = 1e3, ring = 1e3;
    for (int i = 0; i < 10; i++) {
        p = clamp(p, -1.0, 1.0) * 2.0 - p;  // box fold
        float r2 = dot(p, p);
        float k = r2 < 0.25 ? 4.0 : (r2 < 1.0 ? 1.0 / r2 : 1.0);  // sphere fold
        p *= k;
        dr *= abs(k * scale);
        p = p * scale + p0 * mix(0.5, 1.2, kdP0.z);
        trap = min(trap, abs(p.y));
        ring = min(ring, abs(length(p) - mix(0.5, 2.0, kdP0.w)));
    }
    vec3 col = pal(log(1.0 + trap) + kdP1.x) * (0.3 + 0.7 * exp(-ring * 0.5)) + 0.3 * pal(0.7) * exp(-trap * 4.0);
    fragColor = vec4(col, 1.0);
}
