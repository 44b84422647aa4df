// Moire: two or three families of fine rings or lines multiplied together.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord);
    float f = mix(20.0, 70.0, kdP0.x);
    vec2 c1 = vec2(0.3 * sin(iTime * 0.3), 0.0), c2 = (kdP0.yz - 0.5) * 1.5;
    float a = 0.5 + 0.5 * sin(length(p - c1) * f);
    float b = 0.5 + 0.5 * sin(length(p - c2) * f * mix(0.9, 1.1, kdP0.w));
    float lines = 0.5 + 0.5 * sin(dot(p, vec2(cos(kdP1.x * TAU), sin(kdP1.x * TAU))) * f);
    float v = a * b;
    if (kdP1.y > 0.5) v = mix(v, v * lines, 0.8);
    vec3 col = mix(pal(0.0), pal(0.6 + 0.3 * b), smoothstep(0.1, 0.6, v));
    fragColor = vec4(col, 1.0);
}
