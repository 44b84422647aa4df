// Truchet tiles of quarter-circle arcs: each cell picks one of two orientations.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(3.0, 9.0, kdP0.x);
    vec2 id = floor(p), f = fract(p) - 0.5;
    if (hash21(id) < 0.5) f.x = -f.x;
    vec2 q = f - sign(f.x + f.y + 1e-6) * 0.5;  // offset to the nearer arc centre corner
    float d = abs(length(q) - 0.5);
    float w = mix(0.05, 0.2, kdP0.y);
    float line = smoothstep(w, w * 0.4, d);
    float stripe = 0.5 + 0.5 * sin(atan(q.y, q.x) * 8.0 + iTime * 2.0 * kdP0.z);
    vec3 bg = pal(hash21(id + 7.0) * kdP0.w);
    vec3 col = mix(bg * 0.5, pal(0.6 + 0.3 * stripe * kdP1.x), line);
    fragColor = vec4(col, 1.0);
}
