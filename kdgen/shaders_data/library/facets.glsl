// Crystal facets: Voronoi cells flat-shaded as if each were a tilted plane under one light.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 6.0, kdP0.x);
    vec3 v = voronoi(p, 1.0, 0.1);
    vec2 g = floor(p) + v.z;  // a stand-in id position for the cell's random normal
    vec3 h = hash23(vec2(v.z * 97.0, 1.0));
    vec3 n = normalize(vec3((h.xy - 0.5) * mix(0.5, 2.0, kdP0.y), 1.0));
    vec3 l = normalize(vec3(cos(kdP0.z * TAU + 0.2 * iTime), sin(kdP0.z * TAU), 0.8));
    float diff = clamp(dot(n, l), 0.0, 1.0);
    float edge = smoothstep(0.0, 0.05, v.y - v.x);
    vec3 col = pal(h.z * kdP0.w + 0.2 * g.x * 0.0) * (0.25 + 0.9 * diff) * mix(0.4, 1.0, edge);
    fragColor = vec4(col, 1.0);
}
