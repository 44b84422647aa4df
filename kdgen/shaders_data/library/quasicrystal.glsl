// Quasicrystal: plane waves at n evenly spaced angles, summed and folded.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(10.0, 30.0, kdP0.x);
    float n = floor(mix(5.0, 9.99, kdP0.y));
    float v = 0.0;
    for (int i = 0; i < 9; i++) {
        if (float(i) >= n) break;
        float a = float(i) * PI / n;
        v += cos(dot(p, vec2(cos(a), sin(a))) + iTime * mix(0.5, 2.0, kdP0.z));
    }
    v = v / n;
    float folded = abs(fract(v * mix(1.0, 3.0, kdP0.w)) * 2.0 - 1.0);
    vec3 col = pal(folded * 0.7 + kdP1.x);
    fragColor = vec4(col, 1.0);
}
