// Hexagonal tiling with per-cell colours, bevelled borders and an inner motif.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 7.0, kdP0.x);
    vec4 h = hex_cell(p);
    float d = hex_dist(h.xy);
    float border = smoothstep(0.5, 0.5 - mix(0.03, 0.12, kdP0.y), d);
    float id = hash21(h.zw * 1.7 + 0.3);
    float inner = 0.5 + 0.5 * sin(d * mix(10.0, 40.0, kdP0.z) - iTime * 2.0);
    vec3 col = pal(id * kdP0.w + 0.2 * inner * kdP1.x) * border * (0.6 + 0.4 * (1.0 - d));
    fragColor = vec4(col, 1.0);
}
