// Julia sets for parameters near the boundary of the Mandelbrot set.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 z = rot(kdRot) * centred(fragCoord) * mix(1.0, 1.7, kdP0.x) / kdZoom;
    float ang = kdP0.y * TAU + 0.05 * iTime;
    vec2 c = mix(0.62, 0.8, kdP0.z) * vec2(cos(ang), sin(ang));
    float it = 0.0, trap = 1e3;
    for (int i = 0; i < 80; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        trap = min(trap, abs(z.x * z.y));
        if (dot(z, z) > 64.0) break;
        it += 1.0;
    }
    float sm = it - log2(max(log2(dot(z, z)), 1e-3));
    vec3 col = pal(sm * mix(0.015, 0.06, kdP0.w)) * (it >= 80.0 ? 0.2 : 1.0);
    col = mix(col, pal(0.5 + trap), kdP1.x * exp(-trap * 8.0));
    fragColor = vec4(col, 1.0);
}
