// Ridged multifractal height field, lit from its screen-space slope (dFdx/dFdy: no extra noise taps).
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(1.2, 3.5, kdP0.x) + 0.05 * iTime;
    float h = ridged(p, octaves_of(kdP0.y));
    vec3 n = normalize(vec3(-dFdx(h), -dFdy(h), mix(0.02, 0.12, kdP0.z) * 64.0 / iResolution.y));
    vec3 light = normalize(vec3(cos(kdP0.w * TAU), sin(kdP0.w * TAU), 0.7));
    float diff = clamp(dot(n, light), 0.0, 1.0);
    vec3 col = pal(h * mix(0.5, 1.5, kdP1.x)) * (0.35 + 0.75 * diff);
    fragColor = vec4(col, 1.0);
}
