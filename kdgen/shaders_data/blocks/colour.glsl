// Colour maps for the procedural composer: vec3 M_name(float v, float w, vec2 p, vec4 k).
// v is the combined value, w the second field (for shading), p the transformed coordinates.

// cost 0
vec3 M_palette(float v, float w, vec2 p, vec4 k) {
    return pal(v * mix(0.5, 2.0, k.x) + k.y);
}

// cost 0
vec3 M_palette_shaded(float v, float w, vec2 p, vec4 k) {
    return pal(v * mix(0.5, 1.5, k.x) + k.y) * mix(0.4, 1.2, w);
}

// cost 0
vec3 M_bands(float v, float w, vec2 p, vec4 k) {
    float n = floor(mix(3.0, 10.0, k.x));
    return pal(floor(v * n) / n + k.y);
}

// cost 0
vec3 M_duotone(float v, float w, vec2 p, vec4 k) {
    return mix(pal(k.x), 1.0 - pal(k.x + 0.25), smoothstep(0.0, 1.0, v));
}

// cost 0
vec3 M_hsv(float v, float w, vec2 p, vec4 k) {
    return hsv2rgb(vec3(v * mix(0.3, 1.5, k.x) + k.y, mix(0.4, 1.0, k.z), mix(0.4, 1.0, w)));
}

// cost 0
vec3 M_glow(float v, float w, vec2 p, vec4 k) {
    return pal(w + k.y) * 0.2 + pal(v + 0.5) * pow(v, mix(1.0, 4.0, k.x)) * 1.5;
}

// cost 0
vec3 M_isolines(float v, float w, vec2 p, vec4 k) {
    float f = fract(v * mix(3.0, 8.0, k.x));
    return pal(v + k.y) * mix(0.35, 1.0, smoothstep(0.0, 0.15, f));
}

// cost 0
vec3 M_gradient(float v, float w, vec2 p, vec4 k) {
    return mix(pal(v + k.y), pal(p.y * 0.3 + k.z), mix(0.2, 0.6, k.x));
}
