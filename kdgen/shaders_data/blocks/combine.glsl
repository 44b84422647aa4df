// Combining operators for the procedural composer: float C_name(float a, float b, vec4 k).

// cost 0
float C_first(float a, float b, vec4 k) {
    return a;
}

// cost 0
float C_mix(float a, float b, vec4 k) {
    return mix(a, b, mix(0.2, 0.8, k.x));
}

// cost 0
float C_multiply(float a, float b, vec4 k) {
    return a * b * mix(1.0, 2.0, k.x);
}

// cost 0
float C_add_wrap(float a, float b, vec4 k) {
    return fract(a + b * mix(0.5, 2.0, k.x));
}

// cost 0
float C_difference(float a, float b, vec4 k) {
    return abs(a - b) * mix(1.0, 2.0, k.x);
}

// cost 0
float C_max(float a, float b, vec4 k) {
    return max(a, b * mix(0.6, 1.0, k.x));
}

// cost 0
float C_min(float a, float b, vec4 k) {
    return min(a, b + mix(0.0, 0.4, k.x));
}

// cost 0
float C_smooth_min(float a, float b, vec4 k) {
    return smin(a, b, mix(0.05, 0.4, k.x));
}

// cost 0
float C_modulate(float a, float b, vec4 k) {
    return 0.5 + 0.5 * sin(a * mix(2.0, 6.0, k.x) + b * mix(1.0, 4.0, k.y));
}

// cost 0
float C_threshold(float a, float b, vec4 k) {
    float e = mix(0.02, 0.2, k.y);
    return mix(a, 1.0 - a, smoothstep(k.x - e, k.x + e, b));
}

// cost 0
float C_screen(float a, float b, vec4 k) {
    return 1.0 - (1.0 - a) * (1.0 - b * mix(0.5, 1.0, k.x));
}
