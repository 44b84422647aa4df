// Domain warping: noise evaluated at coordinates displaced by noise, twice.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 3.0, kdP0.x);
    float amp = mix(1.5, 4.5, kdP0.y);
    int oct = 3 + int(kdP0.z * 1.99);
    vec2 q = vec2(fbm(p, oct), fbm(p + vec2(5.2, 1.3), oct));
    vec2 r = vec2(fbm(p + amp * q + vec2(1.7, 9.2) + 0.15 * iTime, oct),
                  fbm(p + amp * q + vec2(8.3, 2.8) - 0.12 * iTime, oct));
    float v = fbm(p + amp * r, oct);
    vec3 col = pal(v * 1.3 + kdP0.w);
    col = mix(col, pal(length(q) + 0.5), 0.35 * kdP1.x);
    col *= 0.6 + 0.8 * r.x;
    fragColor = vec4(col, 1.0);
}
