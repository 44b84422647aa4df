// Streaks along a noise vector field: a short line-integral of white noise (LIC-style).
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 2.5, kdP0.x);
    float freq = mix(0.5, 1.5, kdP0.y);
    float acc = 0.0;
    vec2 q = p;
    for (int i = 0; i < 10; i++) {
        float ang = fbm(q * freq + 0.05 * iTime, 3) * TAU * 2.0;
        q += 0.04 * vec2(cos(ang), sin(ang));
        acc += hash21(q * mix(20.0, 50.0, kdP0.z));
    }
    acc /= 10.0;
    float base = fbm(p * freq, 3);
    vec3 col = pal(base + kdP0.w) * (0.4 + 1.2 * (acc - 0.3));
    fragColor = vec4(col, 1.0);
}
