// Escape-time Mandelbrot set near one of several boundary points, smooth iteration colouring.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 spots[6] = vec2[](vec2(-0.745, 0.113), vec2(-0.1011, 0.9563), vec2(-1.25066, 0.02012),
                           vec2(0.2549, 0.0005), vec2(-0.7269, 0.1889), vec2(-0.5, 0.0));
    vec2 c0 = spots[int(kdP0.x * 5.99)];
    float zoom = exp2(mix(0.5, 9.0, kdP0.y) * (kdP0.x < 0.8333 ? 1.0 : 0.2));
    vec2 c = c0 + rot(kdRot) * centred(fragCoord) / zoom + 0.02 * (kdP0.zw - 0.5) / zoom;
    vec2 z = vec2(0.0);
    float it = 0.0, trap = 1e3;
    for (int i = 0; i < 96; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        trap = min(trap, length(z - kdP1.yz));
        if (dot(z, z) > 256.0) break;
        it += 1.0;
    }
    // inside points take an orbit-trap colour: a set interior is not a blank frame
    vec3 col = pal(0.5 + 2.0 * trap) * 0.5;
    if (it < 96.0) {
        float sm = it - log2(log2(dot(z, z))) + 4.0;
        col = pal(sm * mix(0.02, 0.08, kdP1.x) + 0.1 * iTime);
    }
    fragColor = vec4(col, 1.0);
}
