// Voronoi cells filled with colours from their ids, with soft borders.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 7.0, kdP0.x);
    vec3 v = voronoi(p, mix(0.4, 1.0, kdP0.y), mix(0.2, 1.5, kdP0.z));
    float edge = smoothstep(0.0, mix(0.04, 0.2, kdP0.w), v.y - v.x);
    vec3 col = pal(v.z + 0.2 * v.x * kdP1.x);
    col *= mix(0.15, 1.0, edge) * (1.0 - 0.5 * kdP1.y * v.x);
    fragColor = vec4(col, 1.0);
}
