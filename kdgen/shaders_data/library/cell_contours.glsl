// Contour bands of the nearest-point distance, with glowing feature points.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.5, 4.0, kdP0.x);
    vec3 v = voronoi(p, 1.0, mix(0.3, 1.2, kdP0.y));
    float bands = fract(v.x * mix(3.0, 10.0, kdP0.z) - 0.5 * iTime * kdP0.w);
    float glow = 0.02 / (v.x * v.x + 0.02);
    vec3 col = pal(bands * 0.5 + v.z) * (0.4 + 0.6 * smoothstep(0.0, 0.5, bands));
    col += glow * pal(0.9) * kdP1.x;
    fragColor = vec4(col, 1.0);
}
