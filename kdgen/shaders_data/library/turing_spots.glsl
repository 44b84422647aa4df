// Reaction-diffusion look-alike: a band-pass of noise (difference of two scales), sharpened.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(3.0, 8.0, kdP0.x);
    p += 0.3 * vec2(vnoise(p * 0.3), vnoise(p * 0.3 + 5.0));
    float band = gnoise(p) - 0.6 * gnoise(p * 0.45 + 7.7) + 0.4 * gnoise(p * 1.9 + 1.3);
    float thresh = mix(-0.15, 0.15, kdP0.y) + 0.1 * sin(iTime * 0.5);
    float v = smoothstep(thresh - 0.05, thresh + 0.05, band);
    // the complement keeps the two phases apart whatever the palette's period
    vec3 col = mix(pal(kdP0.z), 1.0 - pal(kdP0.z + 0.5 * kdP0.w), v);
    fragColor = vec4(col, 1.0);
}
