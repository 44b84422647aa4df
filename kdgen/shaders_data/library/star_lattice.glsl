// Star lattice: each square cell folded by symmetry, with an n-pointed star outlined in it.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 5.0, kdP0.x);
    vec2 id = floor(p), f = fract(p) - 0.5;
    float n = floor(mix(4.0, 8.99, kdP0.y));
    float a = atan(f.y, f.x), r = length(f);
    float s = TAU / n;
    float fa = abs(mod(a + iTime * 0.2, s) - 0.5 * s);
    float star = r * cos(fa) - mix(0.2, 0.4, kdP0.z) * (1.0 - 0.6 * fa / s);
    float lines = abs(star);
    float frame = sd_box2(f, vec2(0.5)) * -1.0;
    float ink = smoothstep(0.04, 0.01, lines) + smoothstep(0.03, 0.0, frame);
    vec3 col = mix(pal(0.1 * (id.x + id.y) * kdP0.w + step(star, 0.0) * 0.4), pal(0.9 + 0.1 * kdP1.x), clamp(ink, 0.0, 1.0));
    fragColor = vec4(col, 1.0);
}
