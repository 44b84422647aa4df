// Circles in a jittered grid at two scales, random radii, ringed and shaded.
float circle_layer(vec2 p, float salt, out float id) {
    vec2 c = floor(p), f = fract(p);
    vec3 h = hash23(c + salt);
    vec2 centre = 0.5 + 0.3 * (h.xy - 0.5);
    float r = mix(0.15, 0.45, h.z);
    id = h.x;
    return length(f - centre) - r;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 6.0, kdP0.x);
    float id1, id2;
    float d1 = circle_layer(p, 0.0, id1);
    float d2 = circle_layer(p * 2.3 + 5.0 + 0.2 * iTime, 9.0, id2);
    vec3 col = pal(kdP0.y) * 0.3;
    col = mix(col, pal(id2 * kdP0.z + 0.3) * 0.7, smoothstep(0.02, -0.02, d2));
    col = mix(col, pal(id1 * kdP0.z + 0.6), smoothstep(0.02, -0.02, d1));
    float ring = smoothstep(0.03, 0.0, abs(d1 + mix(0.02, 0.1, kdP0.w)));
    col = mix(col, pal(0.95), ring * kdP1.x);
    fragColor = vec4(col, 1.0);
}
