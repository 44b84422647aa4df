// Coordinate transforms for the procedural composer: vec2 T_name(vec2 p, vec4 k), k in [0, 1).
// The "cost" line before each block is read by kdgen/gl/procedural.py (relative per-pixel cost).

// cost 1
vec2 T_rotate(vec2 p, vec4 k) {
    return rot(k.x * TAU + iTime * (k.y - 0.5) * 0.6) * p;
}

// cost 1
vec2 T_scale(vec2 p, vec4 k) {
    return p * mix(0.5, 2.0, k.x) + (k.zw - 0.5) * 2.0;
}

// cost 1
vec2 T_polar(vec2 p, vec4 k) {
    return vec2(atan(p.y, p.x) / PI * floor(mix(1.0, 5.0, k.x)), log(length(p) + 1e-3) * mix(0.5, 2.5, k.y) - iTime * 0.2 * k.z);
}

// cost 1
vec2 T_kaleido(vec2 p, vec4 k) {
    float n = floor(mix(3.0, 10.99, k.x));
    float s = TAU / n;
    float a = abs(mod(atan(p.y, p.x) + iTime * 0.1 * (k.y - 0.5), s) - 0.5 * s);
    return length(p) * vec2(cos(a), sin(a)) - (k.zw - 0.5);
}

// cost 1
vec2 T_mirror(vec2 p, vec4 k) {
    return abs(p) - k.xy * 0.8;
}

// cost 1
vec2 T_swirl(vec2 p, vec4 k) {
    return rot(length(p) * mix(-4.0, 4.0, k.x) + iTime * 0.3 * (k.y - 0.5)) * p;
}

// cost 1
vec2 T_sine_warp(vec2 p, vec4 k) {
    return p + mix(0.05, 0.5, k.x) * sin(p.yx * mix(1.0, 4.0, k.y) + iTime * k.z + k.w * TAU);
}

// cost 3
vec2 T_noise_warp(vec2 p, vec4 k) {
    float f = mix(0.5, 2.0, k.y);
    vec2 q = p * f + iTime * 0.1 * (k.zw - 0.5);
    return p + mix(0.2, 1.5, k.x) * (vec2(vnoise(q), vnoise(q + 7.3)) - 0.5);
}

// cost 1
vec2 T_invert(vec2 p, vec4 k) {
    vec2 c = (k.zw - 0.5) * 0.5;
    vec2 q = p - c;
    return q / max(dot(q, q), 0.03) * mix(0.3, 2.0, k.x);
}

// cost 1
vec2 T_repeat(vec2 p, vec4 k) {
    float s = mix(0.7, 2.5, k.x);
    return (fract(p * s + k.zw) - 0.5) * mix(1.0, 2.0, k.y);
}

// cost 1
vec2 T_hex(vec2 p, vec4 k) {
    return hex_cell(p * mix(0.8, 2.5, k.x)).xy * mix(1.5, 3.0, k.y);
}

// cost 1
vec2 T_fisheye(vec2 p, vec4 k) {
    return p * (1.0 + mix(-0.4, 1.0, k.x) * dot(p, p));
}

// cost 1
vec2 T_shear(vec2 p, vec4 k) {
    return p + vec2(p.y * mix(-1.0, 1.0, k.x), p.x * mix(-1.0, 1.0, k.y));
}

// cost 1
vec2 T_scroll(vec2 p, vec4 k) {
    return p + iTime * (k.xy - 0.5) * 0.5;
}

// cost 1
vec2 T_box_fold(vec2 p, vec4 k) {
    float s = mix(0.5, 1.5, k.x);
    return (clamp(p, -s, s) * 2.0 - p) * mix(0.7, 1.5, k.y);
}

// cost 1
vec2 T_wave(vec2 p, vec4 k) {
    return vec2(p.x + mix(0.1, 0.6, k.x) * sin(p.y * mix(1.5, 5.0, k.y) + iTime * k.z), p.y);
}
