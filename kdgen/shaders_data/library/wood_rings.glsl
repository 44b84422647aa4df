// Growth rings: distance from a centre, bent by noise, folded into bands.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(0.8, 2.5, kdP0.x);
    p.x *= mix(0.3, 1.0, kdP0.y);
    float n = fbm(p * 2.0, 4);
    float r = length(p) * mix(4.0, 14.0, kdP0.z) + n * mix(1.0, 5.0, kdP0.w) + 0.3 * iTime;
    float ring = fract(r);
    ring = smoothstep(0.0, 0.6, ring) * (1.0 - smoothstep(0.6, 1.0, ring));
    float grain = vnoise(vec2(p.x * 40.0, p.y * 3.0));
    vec3 col = pal(0.2 * floor(r) * kdP1.x + 0.5 * ring) * (0.65 + 0.35 * ring + 0.15 * grain);
    fragColor = vec4(col, 1.0);
}
