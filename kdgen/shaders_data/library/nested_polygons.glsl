// Nested regular polygons: bands of a polygon distance, each band turned a little further.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    float n = floor(mix(3.0, 8.99, kdP0.x));
    float step_ = mix(0.06, 0.2, kdP0.y);
    float ring = floor(length(p) / step_);
    vec2 q = rot(ring * mix(0.0, 0.3, kdP0.z) + 0.2 * iTime) * p;
    float d = sd_ngon(q, n, 0.0);
    float band = fract(d / step_);
    float idx = floor(d / step_);
    float edge = smoothstep(0.0, 0.15, band) * smoothstep(1.0, 0.85, band);
    vec3 col = pal(idx * mix(0.05, 0.2, kdP0.w) + kdP1.x) * mix(0.3, 1.0, edge);
    fragColor = vec4(col, 1.0);
}
