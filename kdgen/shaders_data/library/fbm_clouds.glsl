// Layered value-noise clouds, coloured through the frame's palette.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.5, 4.0, kdP0.x);
    p += vec2(0.3, 0.1) * iTime * kdP0.y;
    float v = fbm(p, octaves_of(kdP0.z));
    v = smoothstep(0.15, 0.85, v);
    fragColor = vec4(pal(v * mix(0.6, 1.6, kdP0.w)), 1.0);
}
