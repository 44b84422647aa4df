// Cracked ground: bright F2-F1 seams over noise-tinted plates, at two scales.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 5.0, kdP0.x);
    vec3 a = voronoi(p, 1.0, 0.3 * kdP0.y);
    vec3 b = voronoi(p * 2.7 + 3.1, 1.0, 0.2);
    float seam = 1.0 - smoothstep(0.0, mix(0.03, 0.12, kdP0.z), a.y - a.x);
    float fine = 1.0 - smoothstep(0.0, 0.06, b.y - b.x);
    vec3 base = pal(a.z * 0.3 + fbm(p, 3) * 0.7);
    vec3 col = base * (1.0 - 0.5 * fine * kdP0.w);
    col = mix(col, pal(0.8 + 0.2 * kdP1.x), seam);
    fragColor = vec4(col, 1.0);
}
