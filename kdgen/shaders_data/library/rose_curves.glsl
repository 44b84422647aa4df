// Polar rose curves r = cos(k t), several layers with glow.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) * mix(0.9, 1.6, kdP0.x);
    float a = atan(p.y, p.x), r = length(p);
    vec3 col = pal(r * 0.6 + kdP1.y) * 0.35;
    for (int i = 0; i < 4; i++) {
        float fi = float(i);
        float k = floor(mix(2.0, 9.0, fract(kdP0.y + 0.37 * fi)));
        float rr = mix(0.4, 1.0, fract(kdP0.z + 0.23 * fi)) * abs(cos(k * 0.5 * (a + 0.3 * iTime * (fi + 1.0) * kdP0.w)));
        float d = abs(r - rr);
        col += pal(0.2 * fi + kdP1.x) * 0.004 / (d * d + 0.002);
    }
    fragColor = vec4(col, 1.0);
}
