// Gradient-noise fbm quantised into a few flat palette levels (a colour-remap family).
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 4.0, kdP0.x) + 0.05 * iTime;
    float v = 0.5 + 0.5 * (gnoise(p) * 0.6 + gnoise(p * 2.1 + 3.3) * 0.3 + gnoise(p * 4.3) * 0.15);
    float levels = floor(mix(3.0, 9.0, kdP0.y));
    float q = floor(v * levels) / levels;
    float outline = smoothstep(0.0, 0.05, fract(v * levels)) * smoothstep(1.0, 0.95, fract(v * levels));
    vec3 col = pal(q * mix(0.5, 1.5, kdP0.z) + kdP0.w);
    col *= mix(1.0, 0.5 + 0.5 * outline, kdP1.x);
    fragColor = vec4(col, 1.0);
}
