// A few 2D shapes (discs, boxes, polygons) smoothly merged, drawn with distance bands and a glow.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    float d = 1e3;
    for (int i = 0; i < 5; i++) {
        vec3 h = hash23(vec2(float(i), 2.0));
        vec2 c = (h.xy - 0.5) * 1.4 + 0.1 * sin(iTime + h.z * TAU);
        vec2 q = rot(h.z * TAU + 0.3 * iTime) * (p - c);
        float s = mix(0.15, 0.4, h.z);
        float shape = h.x < 0.33 ? sd_circle(q, s) : (h.x < 0.66 ? sd_box2(q, vec2(s, s * 0.6)) : sd_ngon(q, 3.0 + floor(h.y * 4.0), s));
        d = smin(d, shape, mix(0.02, 0.3, kdP0.x));
    }
    float bands = 0.5 + 0.5 * cos(d * mix(20.0, 80.0, kdP0.y));
    vec3 col = d < 0.0 ? pal(kdP0.z + d) : pal(kdP0.z + 0.5) * mix(0.3, 0.8, bands) * exp(-2.0 * d);
    col += pal(0.9) * 0.01 / (abs(d) + 0.01) * kdP0.w;
    fragColor = vec4(col, 1.0);
}
