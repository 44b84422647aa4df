// Equilateral triangle tiling via skewed coordinates, each triangle with its own shade.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(3.0, 8.0, kdP0.x);
    vec2 s = vec2(p.x - p.y * 0.57735, p.y * 1.1547);
    vec2 id = floor(s), f = fract(s);
    float upper = step(1.0, f.x + f.y);
    float h = hash21(id * 2.0 + upper);
    float edge = min(min(f.x, f.y), abs(1.0 - f.x - f.y) * 0.7071);
    float line = smoothstep(0.0, mix(0.03, 0.12, kdP0.y), edge);
    float pulse = 0.5 + 0.5 * sin(iTime * mix(0.5, 3.0, kdP0.z) + h * TAU);
    vec3 col = pal(h * mix(0.3, 1.0, kdP0.w) + 0.2 * pulse) * mix(0.2, 1.0, line);
    fragColor = vec4(col, 1.0);
}
