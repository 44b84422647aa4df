// Spiral galaxy: logarithmic arms, a bright core, dust noise and a scatter of stars.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom;
    p.y *= mix(1.0, 2.2, kdP0.x);  // inclination
    float r = length(p), a = atan(p.y, p.x);
    float arms = floor(mix(2.0, 5.0, kdP0.y));
    float wind = mix(2.0, 6.0, kdP0.z);
    float spiral = 0.5 + 0.5 * cos(arms * (a - wind * log(r + 0.05)) + iTime * 0.2);
    float dust = fbm(p * 4.0, 4);
    float disc = exp(-r * mix(1.5, 3.5, kdP0.w));
    vec3 col = pal(r + 0.3 * dust) * disc * (0.3 + spiral * dust * 1.4) + pal(0.95) * exp(-r * 12.0);
    vec2 sp = centred(fragCoord) * 30.0;
    float star = step(0.985, hash21(sp)) * hash21(sp + 1.0);
    col += star * (1.0 - disc) * kdP1.x;
    col = col * 1.3 + pal(0.1) * 0.15;
    fragColor = vec4(col, 1.0);
}
