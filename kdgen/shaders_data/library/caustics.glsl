// Water caustics: a few rounds of sine displacement, brightness where the warped grid folds.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 6.0, kdP0.x);
    vec2 q = p;
    float t = iTime * mix(0.2, 1.0, kdP0.y);
    float acc = 0.0;
    for (int i = 1; i <= 5; i++) {
        float fi = float(i);
        q += vec2(sin(q.y * 1.3 + t * fi * 0.3), cos(q.x * 1.1 - t * 0.7)) / fi;
        acc += 1.0 / (1.0 + 20.0 * abs(sin(q.x + q.y)));
    }
    acc /= 5.0;
    vec3 col = pal(0.5 + 0.2 * q.x * kdP0.z) * 0.5 + pal(0.9 + 0.1 * kdP0.w) * pow(acc, mix(0.6, 1.6, kdP1.x)) * 1.5;
    fragColor = vec4(col, 1.0);
}
