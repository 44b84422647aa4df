// Zigzag chevron bands with a noise wobble.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 6.0, kdP0.x);
    float zig = abs(fract(p.x * mix(0.5, 2.0, kdP0.y)) - 0.5) * mix(0.5, 2.0, kdP0.z);
    float y = p.y + zig + 0.3 * vnoise(p * 2.0) * kdP0.w + 0.2 * iTime;
    float band = floor(y * 2.0);
    float edge = fract(y * 2.0);
    float soft = smoothstep(0.0, 0.08, edge) * smoothstep(1.0, 0.92, edge);
    vec3 col = pal(band * mix(0.1, 0.37, kdP1.x)) * mix(0.5, 1.0, soft);
    fragColor = vec4(col, 1.0);
}
