// Flames: noise scrolling upwards, shaped by a height mask and mapped through a ramp.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = fragCoord / iResolution.xy;
    vec2 p = vec2(uv.x * mix(2.0, 6.0, kdP0.x), uv.y * 2.5);
    float n = fbm(p * vec2(1.0, 0.6) - vec2(0.0, iTime * mix(0.8, 2.0, kdP0.y)), 5);
    float mask = (1.0 - uv.y) * mix(1.0, 1.8, kdP0.z) - 0.4 + 0.2 * sin(uv.x * 12.0 + kdP0.w * TAU);
    float v = clamp(n * mask * 2.2, 0.0, 1.0);
    vec3 col = mix(pal(kdP1.x) * 0.1, pal(0.3 + 0.5 * v), smoothstep(0.05, 0.6, v)) + pow(v, 3.0) * 0.6;
    fragColor = vec4(col, 1.0);
}
