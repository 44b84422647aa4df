// A noise height field raymarched from a low camera, with a sky gradient and distance fog.
float terrain_h(vec2 p) { return 0.8 * fbm(p * 0.5, 3) + 0.25 * vnoise(p * 2.1); }

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = centred(fragCoord);
    vec3 ro = vec3(kdOffset.x * 10.0, 1.0 + kdP0.x, iTime * mix(0.3, 1.5, kdP0.y) + kdOffset.y * 10.0);
    vec3 rd = normalize(vec3(uv.x, uv.y - mix(0.1, 0.5, kdP0.z), 1.5));
    rd.xz = rot(kdRot) * rd.xz;
    float t = 0.05, h = 0.0;
    bool hit = false;
    for (int i = 0; i < 48; i++) {
        vec3 p = ro + rd * t;
        h = p.y - terrain_h(p.xz);
        if (h < 0.002 * t) { hit = true; break; }
        t += max(0.6 * h, 0.02 + 0.01 * t);
        if (t > 25.0) break;
    }
    vec3 sky = mix(pal(0.6), pal(0.9), clamp(rd.y * 2.0, 0.0, 1.0));
    vec3 col = sky;
    if (hit) {
        vec3 p = ro + rd * t;
        float g = terrain_h(p.xz + vec2(0.05, 0.0)) - terrain_h(p.xz);
        col = pal(0.2 * p.y + kdP0.w) * (0.6 - 4.0 * g);
        col = mix(col, sky, 1.0 - exp(-0.08 * t));
    }
    fragColor = vec4(col, 1.0);
}
