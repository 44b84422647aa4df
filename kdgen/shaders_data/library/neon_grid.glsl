// Perspective floor grid under a banded sun (the synthwave look).
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = centred(fragCoord);
    float horizon = mix(-0.2, 0.3, kdP0.x);
    vec3 col = mix(pal(0.7), pal(0.2), clamp((uv.y - horizon) * 1.5, 0.0, 1.0)) * 0.6;
    vec2 sc = vec2(mix(-0.4, 0.4, kdP0.y), horizon + mix(0.2, 0.45, kdP0.z));
    float sd = length(uv - sc) - mix(0.2, 0.4, kdP0.w);
    float stripes = step(0.5, fract((uv.y - sc.y) * 12.0 + 0.5 * iTime)) + step(sc.y, uv.y);
    col = mix(col, pal(0.1 + uv.y), smoothstep(0.01, -0.01, sd) * clamp(stripes, 0.0, 1.0));
    if (uv.y < horizon) {
        float depth = 1.0 / max(horizon - uv.y, 1e-3);
        vec2 g = vec2(uv.x * depth * mix(0.5, 1.5, kdP1.x), depth + iTime * 2.0);
        vec2 gl = abs(fract(g) - 0.5);
        float line = max(smoothstep(0.05 * depth * 0.2, 0.0, gl.x - 0.46), smoothstep(0.0, 0.03, gl.y - 0.45));
        float fade = exp(-depth * 0.1);
        col = mix(pal(0.55) * 0.2, pal(0.85 + 0.1 * kdP1.y), clamp(line, 0.0, 1.0) * fade);
    }
    fragColor = vec4(col, 1.0);
}
