// Rays from a centre: angular sines twisted with radius, in two layers.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = centred(fragCoord) / kdZoom - 0.4 * (kdP0.xy - 0.5);
    float a = atan(p.y, p.x), r = length(p);
    float n = floor(mix(5.0, 30.0, kdP0.z));
    float tw = mix(-3.0, 3.0, kdP0.w);
    float v1 = 0.5 + 0.5 * sin(a * n + r * tw * 4.0 + iTime);
    float v2 = 0.5 + 0.5 * sin(a * floor(n * 0.5 + 1.0) - r * tw * 2.0 - 0.7 * iTime);
    float v = mix(v1, v2, kdP1.x) * exp(-r * mix(0.3, 1.5, kdP1.y));
    vec3 col = pal(v + r * 0.3) * (0.3 + v);
    fragColor = vec4(col, 1.0);
}
