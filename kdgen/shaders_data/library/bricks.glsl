// Brick bond: offset rows, mortar joints, per-brick colour and surface noise.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = view(fragCoord) * mix(2.0, 7.0, kdP0.x);
    p.x *= 0.5;
    float row = floor(p.y);
    p.x += mod(row, 2.0) * mix(0.25, 0.5, kdP0.y);
    vec2 id = floor(p), f = fract(p);
    float mortar = mix(0.03, 0.12, kdP0.z);
    float m = smoothstep(0.0, mortar, f.x) * smoothstep(1.0, 1.0 - mortar, f.x) *
              smoothstep(0.0, mortar * 2.0, f.y) * smoothstep(1.0, 1.0 - mortar * 2.0, f.y);
    float grain = vnoise(p * vec2(16.0, 8.0) + iTime * 0.01);
    vec3 brick = pal(hash21(id) * kdP0.w + 0.1 * grain) * (0.75 + 0.3 * grain);
    fragColor = vec4(mix(pal(0.5 + kdP1.x) * 0.35, brick, m), 1.0);
}
