// The classic tunnel: polar angle and inverse radius index a pattern that scrolls with time.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = centred(fragCoord) + 0.3 * (kdP0.xy - 0.5);
    float r = length(p), a = atan(p.y, p.x);
    vec2 uv = vec2(a / PI * floor(mix(1.0, 6.0, kdP0.z)), mix(0.3, 1.0, kdP0.w) / max(r, 1e-3) + iTime * 0.5);
    uv.x += uv.y * mix(-0.5, 0.5, kdP1.x);  // twist
    float kind = kdP1.y;
    float v;
    if (kind < 0.33) {
        v = mod(floor(uv.x * 4.0) + floor(uv.y * 4.0), 2.0);
    } else if (kind < 0.66) {
        v = 0.5 + 0.5 * sin(uv.y * 12.0) * sin(uv.x * 12.0);
    } else {
        v = fbm(uv * vec2(3.0, 2.0), 4);
    }
    vec3 col = pal(v * 0.6 + uv.y * 0.05) * clamp(r * 1.5, 0.0, 1.0);
    fragColor = vec4(col, 1.0);
}
