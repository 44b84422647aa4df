// A checkerboard seen through a warp: circle inversion, swirl or a sine ripple.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord);
    float kind = kdP0.x;
    if (kind < 0.33) {
        p = p / max(dot(p, p), 0.02) * mix(0.5, 2.0, kdP0.y);
    } else if (kind < 0.66) {
        p = rot(length(p) * mix(1.0, 6.0, kdP0.y) + iTime * 0.3) * p;
    } else {
        p += 0.2 * sin(p.yx * mix(2.0, 8.0, kdP0.y) + iTime);
    }
    vec2 g = p * mix(2.0, 8.0, kdP0.z);
    vec2 s = sin(g * PI);
    float v = clamp(s.x * s.y * 8.0, -1.0, 1.0);  // soft-edged checker, no aliasing spikes
    vec3 col = mix(pal(kdP0.w), pal(kdP0.w + 0.5), 0.5 + 0.5 * v);
    fragColor = vec4(col, 1.0);
}
