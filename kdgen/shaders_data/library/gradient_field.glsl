// Smooth colour fields: a few blurred palette gradients blended with low-frequency noise.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord);
    vec2 dir1 = vec2(cos(kdP0.x * TAU), sin(kdP0.x * TAU));
    vec2 dir2 = vec2(cos(kdP0.y * TAU), sin(kdP0.y * TAU));
    float g1 = dot(p, dir1) * mix(0.3, 1.0, kdP0.z);
    float g2 = length(p - dir2) * mix(0.3, 1.0, kdP0.w);
    float n = vnoise(p * 1.5 + 0.1 * iTime);
    vec3 col = mix(pal(g1), pal(g2 + 0.3), smoothstep(0.2, 0.8, n));
    col *= 0.8 + 0.4 * vnoise(p * 6.0 + 2.0) * kdP1.x;
    fragColor = vec4(col, 1.0);
}
