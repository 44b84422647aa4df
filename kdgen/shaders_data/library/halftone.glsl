// Halftone print: a rotated dot screen whose dot size follows a smooth noise image.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord);
    float tone_ = fbm(p * mix(0.8, 2.5, kdP0.x) + 0.05 * iTime, 4);
    vec2 g = rot(kdP0.y * PI) * p * mix(6.0, 16.0, kdP0.z);
    vec2 f = fract(g) - 0.5;
    float r = sqrt(clamp(tone_ * 1.3 - 0.15, 0.0, 1.0)) * 0.6;
    float dots = smoothstep(r + 0.06, r - 0.06, length(f));
    vec3 ink = pal(tone_ * kdP0.w + 0.5), paper = pal(kdP1.x) * 0.3 + 0.6;
    fragColor = vec4(mix(paper, ink, dots), 1.0);
}
