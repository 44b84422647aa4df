// Diagonal maze: each cell draws one of the two diagonals.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(4.0, 12.0, kdP0.x);
    vec2 id = floor(p), f = fract(p);
    float h = hash21(id);
    if (h < 0.5) f.x = 1.0 - f.x;
    float d = abs(f.x - f.y) * 0.7071;
    float w = mix(0.06, 0.22, kdP0.y);
    float line = smoothstep(w, w * 0.5, d);
    float shade = mix(0.4, 1.0, hash21(id + 3.0));
    vec3 col = mix(pal(kdP0.z) * 0.45, pal(0.5 + 0.4 * h * kdP0.w) * shade, line);
    fragColor = vec4(col, 1.0);
}
