// Marble veins: a sine of one coordinate perturbed by turbulence.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 3.0, kdP0.x);
    float turb = fbm(p * 1.7 + 0.1 * iTime, octaves_of(kdP0.y));
    float v = sin(p.x * mix(2.0, 8.0, kdP0.z) + turb * mix(4.0, 12.0, kdP0.w));
    v = pow(0.5 + 0.5 * v, mix(0.3, 3.0, kdP1.x));
    vec3 col = mix(pal(0.1 + 0.3 * turb), pal(0.6 + 0.4 * v), v);
    fragColor = vec4(col, 1.0);
}
