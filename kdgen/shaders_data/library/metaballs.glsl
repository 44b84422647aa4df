// Metaballs: an inverse-square field of moving blobs, thresholded with a glow halo.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    float field = 0.0;
    vec3 tint = vec3(0.0);
    int n = 4 + int(kdP0.x * 4.99);
    for (int i = 0; i < n; i++) {
        vec2 h = hash22(vec2(float(i), 11.0));
        vec2 c = 0.8 * sin(iTime * (0.3 + h * mix(0.3, 1.5, kdP0.y)) + h * TAU);
        float r = mix(0.12, 0.35, hash21(vec2(float(i), 5.0)));
        float w = r * r / (dot(p - c, p - c) + 1e-4);
        field += w;
        tint += w * pal(float(i) * 0.13 + kdP0.z);
    }
    tint /= max(field, 1e-4);
    float inside = smoothstep(0.9, 1.1, field);
    float halo = clamp(field, 0.0, 1.0) * mix(0.2, 0.6, kdP0.w);
    vec3 col = pal(0.9 + 0.1 * kdP1.x) * 0.3 + tint * (inside + halo);
    fragColor = vec4(col, 1.0);
}
