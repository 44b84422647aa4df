// Stripes along a random direction, bent by noise and sine warps.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.0, 3.0, kdP0.x);
    p += mix(0.2, 1.5, kdP0.y) * vec2(fbm(p + 0.1 * iTime, 4), fbm(p + 4.3, 4));
    p += 0.3 * sin(p.yx * mix(1.0, 5.0, kdP0.z));
    float s = p.x * mix(4.0, 16.0, kdP0.w);
    float band = 0.5 + 0.5 * sin(s);
    band = smoothstep(0.5 - kdP1.x * 0.5, 0.5 + kdP1.x * 0.5, band);
    vec3 col = mix(pal(0.1 + 0.05 * floor(s / TAU)), pal(0.6), band);
    fragColor = vec4(col, 1.0);
}
