// Hypotrochoid (spirograph) curves, drawn as a thick line over radial bands.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot + 0.1 * iTime) * centred(fragCoord) / kdZoom;
    float R = 1.0, r = mix(0.15, 0.85, kdP0.x), dd = mix(0.2, 1.0, kdP0.y);
    r = floor(r * 12.0) / 12.0 + 0.0001;
    float k = (R - r) / r;
    float s = 0.55 / (R - r + dd);
    float d = 1e3;
    vec2 prev = s * vec2(R - r + dd, 0.0);
    for (int i = 1; i <= 96; i++) {
        float t = float(i) / 96.0 * TAU * 6.0;
        vec2 cur = s * vec2((R - r) * cos(t) + dd * cos(k * t), (R - r) * sin(t) - dd * sin(k * t));
        d = min(d, sd_segment(p, prev, cur));
        prev = cur;
    }
    float line = smoothstep(mix(0.01, 0.04, kdP0.z), 0.0, d);
    vec3 col = mix(pal(length(p) * 2.0 + kdP0.w) * 0.35, pal(0.8 + 0.2 * kdP1.x), line);
    fragColor = vec4(col, 1.0);
}
