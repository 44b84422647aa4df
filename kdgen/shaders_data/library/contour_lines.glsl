// Topographic map: iso-lines of a noise height with hypsometric tints.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 3.0, kdP0.x) + 0.03 * iTime;
    float h = fbm(p, octaves_of(kdP0.y));
    float k = mix(8.0, 24.0, kdP0.z);
    float f = fract(h * k);
    float w = fwidth(h * k) * 1.2;
    float line = smoothstep(w, 0.0, min(f, 1.0 - f));
    float major = step(0.5, fract(floor(h * k) / 5.0 + 0.1));
    vec3 col = pal(floor(h * k) / k * mix(0.8, 2.0, kdP0.w)) * 0.9;
    col = mix(col, pal(0.0) * 0.15, line * mix(0.6, 1.0, major));
    fragColor = vec4(col, 1.0);
}
