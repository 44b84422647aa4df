// Kaleidoscope: the plane folded into mirrored sectors, then a warped noise pattern inside.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    float n = floor(mix(3.0, 12.99, kdP0.x));
    float a = atan(p.y, p.x), r = length(p);
    float s = TAU / n;
    a = abs(mod(a + 0.2 * iTime * kdP0.y, s) - 0.5 * s);
    vec2 q = r * vec2(cos(a), sin(a)) * mix(1.5, 4.0, kdP0.z) + kdOffset;
    float v = fbm(q + vec2(fbm(q * 1.3, 3), 0.0) * mix(0.5, 2.5, kdP0.w), 4);
    float lines = 0.5 + 0.5 * sin(v * mix(10.0, 30.0, kdP1.x));
    vec3 col = pal(v + 0.3 * r) * mix(0.6, 1.1, lines);
    fragColor = vec4(col, 1.0);
}
