// Newton's method on z^n - 1: each point coloured by the root it converges to and how fast.
vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
vec2 cdiv(vec2 a, vec2 b) { return vec2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y) / max(dot(b, b), 1e-12); }

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    // near the origin, where the basins interleave
    vec2 z = rot(kdRot) * centred(fragCoord) / kdZoom * mix(0.6, 1.6, kdP0.x) + 0.3 * kdOffset;
    float n = floor(mix(3.0, 6.99, kdP0.y));
    vec2 relax = vec2(mix(0.7, 1.3, kdP0.z), 0.2 * sin(iTime * 0.3));
    float it = 0.0;
    for (int i = 0; i < 32; i++) {
        vec2 zn1 = vec2(1.0, 0.0);
        for (int k = 1; k < 7; k++) { if (float(k) >= n) break; zn1 = cmul(zn1, z); }  // z^(n-1)
        vec2 f = cmul(zn1, z) - vec2(1.0, 0.0);
        vec2 step_ = cmul(relax, cdiv(f, n * zn1));
        z -= step_;
        if (dot(step_, step_) < 1e-6) break;
        it += 1.0;
    }
    float root = fract(atan(z.y, z.x) / TAU * n + 0.5 / n);
    float shade = 1.0 - it / 32.0;
    vec3 col = pal(floor(root * n) / n * mix(0.5, 1.0, kdP0.w) + it * 0.03 + kdP1.x) * (0.3 + 0.7 * shade);
    fragColor = vec4(col, 1.0);
}
