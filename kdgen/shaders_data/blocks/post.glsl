// Finishing touches for the procedural composer: vec3 P_name(vec3 c, vec2 uv, vec4 k), uv centred.

// cost 0
vec3 P_none(vec3 c, vec2 uv, vec4 k) {
    return c;
}

// cost 0
vec3 P_invert(vec3 c, vec2 uv, vec4 k) {
    return 1.0 - clamp(c, 0.0, 1.0);
}

// cost 0
vec3 P_vignette(vec3 c, vec2 uv, vec4 k) {
    return c * (1.0 - mix(0.2, 0.6, k.x) * dot(uv, uv));
}

// cost 0
vec3 P_posterize(vec3 c, vec2 uv, vec4 k) {
    float n = floor(mix(3.0, 8.0, k.x));
    return floor(clamp(c, 0.0, 1.0) * n + 0.5) / n;
}

// cost 0
vec3 P_contrast(vec3 c, vec2 uv, vec4 k) {
    c = clamp(c, 0.0, 1.0);
    return mix(c, c * c * (3.0 - 2.0 * c), mix(0.5, 1.0, k.x));
}

// cost 0
vec3 P_scanlines(vec3 c, vec2 uv, vec4 k) {
    return c * (0.75 + 0.25 * sin(uv.y * mix(8.0, 20.0, k.x)));
}

// cost 0
vec3 P_desaturate(vec3 c, vec2 uv, vec4 k) {
    return mix(c, vec3(dot(c, vec3(0.3, 0.55, 0.15))), mix(0.3, 0.8, k.x));
}
