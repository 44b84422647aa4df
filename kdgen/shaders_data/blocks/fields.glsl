// Pattern fields for the procedural composer: float F_name(vec2 p, vec4 k), about [0, 1].

// cost 3
float F_fbm(vec2 p, vec4 k) {
    return fbm(p * mix(0.7, 2.5, k.x) + k.zw * 10.0, octaves_of(k.y));
}

// cost 3
float F_ridged(vec2 p, vec4 k) {
    return ridged(p * mix(0.7, 2.0, k.x) + k.zw * 10.0, 3 + int(k.y * 2.99));
}

// cost 1
float F_noise(vec2 p, vec4 k) {
    return 0.5 + 0.5 * gnoise(p * mix(0.7, 3.0, k.x) + k.zw * 10.0 + iTime * 0.1);
}

// cost 3
float F_cells(vec2 p, vec4 k) {
    return clamp(voronoi(p * mix(1.2, 4.0, k.x), mix(0.3, 1.0, k.y), k.z).x * 1.2, 0.0, 1.0);
}

// cost 3
float F_cell_edges(vec2 p, vec4 k) {
    vec3 v = voronoi(p * mix(1.2, 4.0, k.x), 1.0, k.z);
    return smoothstep(0.0, mix(0.05, 0.3, k.y), v.y - v.x);
}

// cost 3
float F_cell_ids(vec2 p, vec4 k) {
    return voronoi(p * mix(1.2, 4.0, k.x), mix(0.3, 1.0, k.y), k.z).z;
}

// cost 1
float F_stripes(vec2 p, vec4 k) {
    vec2 d = vec2(cos(k.x * TAU), sin(k.x * TAU));
    return 0.5 + 0.5 * sin(dot(p, d) * mix(2.0, 10.0, k.y) + iTime * mix(-2.0, 2.0, k.z));
}

// cost 1
float F_rings(vec2 p, vec4 k) {
    return 0.5 + 0.5 * sin(length(p - (k.zw - 0.5)) * mix(3.0, 15.0, k.x) - iTime * mix(0.0, 3.0, k.y));
}

// cost 1
float F_checker(vec2 p, vec4 k) {
    vec2 s = sin(p * mix(1.5, 6.0, k.x) + k.zw * TAU);
    return 0.5 + 0.5 * clamp(s.x * s.y * mix(2.0, 10.0, k.y), -1.0, 1.0);
}

// cost 1
float F_grid(vec2 p, vec4 k) {
    vec2 g = abs(fract(p * mix(1.5, 5.0, k.x)) - 0.5);
    return smoothstep(mix(0.02, 0.2, k.y), 0.0, 0.5 - max(g.x, g.y));
}

// cost 1
float F_dots(vec2 p, vec4 k) {
    vec2 q = p * mix(1.5, 5.0, k.x);
    float r = mix(0.1, 0.45, k.y) * (0.7 + 0.3 * sin(iTime + hash21(floor(q)) * TAU));
    return smoothstep(r + 0.05, r - 0.05, length(fract(q) - 0.5));
}

// cost 1
float F_spiral(vec2 p, vec4 k) {
    float a = atan(p.y, p.x), r = length(p) + 1e-3;
    return 0.5 + 0.5 * sin(a * floor(mix(1.0, 8.0, k.x)) + log(r) * mix(-5.0, 5.0, k.y) + iTime * k.z);
}

// cost 1
float F_rays(vec2 p, vec4 k) {
    float a = atan(p.y, p.x);
    return pow(0.5 + 0.5 * sin(a * floor(mix(3.0, 14.0, k.x)) + iTime * (k.z - 0.5)), mix(0.5, 4.0, k.y));
}

// cost 1
float F_waves(vec2 p, vec4 k) {
    float t = iTime * mix(0.2, 1.5, k.y);
    float f = mix(0.7, 3.0, k.x);
    float v = sin(p.x * f + t) + sin(p.y * f * 0.8 - t) + sin((p.x + p.y) * f * 0.6 + k.z * TAU);
    return 0.5 + v / 6.0;
}

// cost 4
float F_julia(vec2 p, vec4 k) {
    float ang = k.x * TAU + 0.05 * iTime;
    vec2 c = mix(0.62, 0.8, k.y) * vec2(cos(ang), sin(ang));
    vec2 z = p * mix(0.5, 1.2, k.z);
    float it = 0.0;
    for (int i = 0; i < 32; i++) {
        z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + c;
        if (dot(z, z) > 16.0) break;
        it += 1.0;
    }
    return it / 32.0;
}

// cost 1
float F_truchet(vec2 p, vec4 k) {
    vec2 q = p * mix(1.5, 5.0, k.x);
    vec2 id = floor(q), f = fract(q) - 0.5;
    if (hash21(id) < 0.5) f.x = -f.x;
    vec2 c = f - sign(f.x + f.y + 1e-6) * 0.5;
    return smoothstep(mix(0.05, 0.25, k.y), 0.0, abs(length(c) - 0.5));
}

// cost 1
float F_hexes(vec2 p, vec4 k) {
    vec4 h = hex_cell(p * mix(1.2, 4.0, k.x));
    return mix(hex_dist(h.xy) * 2.0, hash21(h.zw * 3.1), k.y);
}

// cost 3
float F_contours(vec2 p, vec4 k) {
    float h = fbm(p * mix(0.7, 2.0, k.x) + k.zw * 10.0, 4);
    return fract(h * mix(3.0, 8.0, k.y) + iTime * 0.1);
}

// cost 2
float F_blobs(vec2 p, vec4 k) {
    float f = 0.0;
    for (int i = 0; i < 5; i++) {
        vec2 h = hash22(vec2(float(i), 31.0 + floor(k.z * 8.0)));
        vec2 c = 0.9 * sin(iTime * (0.2 + h) + h * TAU);
        f += mix(0.02, 0.08, k.x) / (dot(p - c, p - c) + 1e-3);
    }
    return clamp(f * mix(0.3, 1.0, k.y), 0.0, 1.0);
}

// cost 1
float F_polygon(vec2 p, vec4 k) {
    float d = sd_ngon(rot(iTime * 0.2 * (k.z - 0.5)) * p, floor(mix(3.0, 8.99, k.x)), 0.0);
    return fract(d * mix(1.5, 6.0, k.y));
}

// cost 2
float F_caustic(vec2 p, vec4 k) {
    vec2 q = p * mix(1.0, 3.0, k.x);
    float acc = 0.0;
    for (int i = 1; i <= 3; i++) {
        q += vec2(sin(q.y * 1.3 + iTime * 0.3), cos(q.x * 1.1 - iTime * 0.2)) / float(i);
        acc += 1.0 / (1.0 + 15.0 * abs(sin(q.x + q.y)));
    }
    return clamp(acc / 3.0 * mix(1.0, 2.5, k.y), 0.0, 1.0);
}
