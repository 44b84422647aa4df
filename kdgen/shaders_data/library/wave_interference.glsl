// Circular waves from a few point sources, summed: interference fringes.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord);
    float k = mix(8.0, 40.0, kdP0.x);
    int n = 2 + int(kdP0.y * 4.99);
    float v = 0.0;
    for (int i = 0; i < n; i++) {
        vec2 src = (hash22(vec2(float(i), 3.0)) - 0.5) * 3.0;
        float d = length(p - src);
        v += cos(k * d - iTime * mix(1.0, 5.0, kdP0.z));
    }
    v /= float(n);
    float sharp = mix(1.0, 4.0, kdP0.w);
    vec3 col = pal(0.5 + 0.5 * tanh(v * sharp) + 0.2 * kdP1.x);
    fragColor = vec4(col, 1.0);
}
