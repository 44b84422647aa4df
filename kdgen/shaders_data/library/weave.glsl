// Basket weave: over-under threads in two directions with rounded shading.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(3.0, 10.0, kdP0.x);
    vec2 id = floor(p), f = fract(p);
    float over = mod(id.x + id.y, 2.0);
    float across = over > 0.5 ? f.y : f.x;   // position across the visible thread
    float along = over > 0.5 ? f.x : f.y;
    float shade = sin(across * PI) * (0.7 + 0.3 * sin(along * PI));
    float gap = smoothstep(0.0, mix(0.05, 0.2, kdP0.y), min(across, 1.0 - across));
    float k = over > 0.5 ? kdP0.z : kdP0.z + 0.5 * kdP0.w;
    vec3 col = pal(k + 0.1 * hash21(id) * kdP1.x) * shade * gap + pal(0.0) * 0.05;
    fragColor = vec4(col, 1.0);
}
