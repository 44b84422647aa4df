// Iterated inversion fold p -> |p| / dot(p, p) - c, with orbit statistics as colour.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(0.3, 1.0, kdP0.x);
    vec2 c = mix(vec2(0.3, 0.3), vec2(1.0, 1.0), kdP0.yz) + 0.03 * sin(iTime * vec2(0.3, 0.4));
    float acc = 0.0, trap = 1e3;
    for (int i = 0; i < 14; i++) {
        p = abs(p) / max(dot(p, p), 1e-4) - c;
        acc += exp(-abs(length(p) - 1.0) * mix(2.0, 10.0, kdP0.w));
        trap = min(trap, abs(p.x));
    }
    vec3 col = pal(acc * 0.12 + kdP1.x) * (0.3 + 0.7 * exp(-trap * 2.0));
    fragColor = vec4(col, 1.0);
}
