// Glowing Lissajous figures: distance to a polyline sampling of the curve.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    float a = floor(mix(1.0, 6.0, kdP0.x)), b = floor(mix(1.0, 7.0, kdP0.y));
    float ph = kdP0.z * TAU + 0.2 * iTime;
    float d = 1e3;
    vec2 prev = 0.8 * vec2(sin(ph), 0.0);
    for (int i = 1; i <= 64; i++) {
        float t = float(i) / 64.0 * TAU;
        vec2 cur = 0.8 * vec2(sin(a * t + ph), sin(b * t));
        d = min(d, sd_segment(p, prev, cur));
        prev = cur;
    }
    float w = mix(0.005, 0.03, kdP0.w);
    vec3 col = pal(length(p) + kdP1.x) * (w / (d + w)) + pal(0.2) * 0.2;
    fragColor = vec4(col, 1.0);
}
