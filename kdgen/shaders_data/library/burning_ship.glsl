// Burning-ship fractal: the Mandelbrot iteration on absolute values.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 centre = mix(vec2(-1.76, -0.03), vec2(-1.5, -0.3), kdP0.x);
    float zoom = exp2(mix(0.0, 4.0, kdP0.y));
    vec2 c = centre + vec2(1.0, -1.0) * (rot(kdRot * 0.1) * centred(fragCoord)) / zoom;
    vec2 z = vec2(0.0);
    float it = 0.0, trap = 1e3;
    for (int i = 0; i < 80; i++) {
        z = abs(z);
        trap = min(trap, abs(z.y - kdP1.x));
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 64.0) break;
        it += 1.0;
    }
    float sm = it - log2(max(log2(dot(z, z)), 1e-3));
    vec3 col = it >= 80.0 ? pal(3.0 * trap) * 0.45 : pal(sm * mix(0.02, 0.07, kdP0.z) + kdP0.w);
    fragColor = vec4(col, 1.0);
}
