// Plasma: a sum of sines along x, y, a diagonal and the radius, animated in time.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 6.0, kdP0.x);
    float t = iTime * mix(0.3, 1.5, kdP0.y);
    float v = sin(p.x + t) + sin(0.7 * p.y - 1.3 * t) + sin(0.6 * (p.x + p.y) + 0.7 * t);
    vec2 c = p + 2.0 * vec2(sin(0.5 * t), cos(0.33 * t));
    v += sin(sqrt(dot(c, c) + 1.0) * mix(0.8, 2.0, kdP0.z));
    vec3 col = pal(v * mix(0.1, 0.4, kdP0.w) + kdP1.x);
    fragColor = vec4(col, 1.0);
}
