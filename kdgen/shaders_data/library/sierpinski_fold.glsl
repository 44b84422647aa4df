// An IFS drawn by folding: repeated mirror folds, scaling and rotation, orbit-trapped.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = rot(kdRot) * centred(fragCoord) / kdZoom * 1.5;
    float scale = mix(1.7, 2.3, kdP0.x);
    float ang = mix(-0.5, 0.5, kdP0.y) + 0.05 * sin(iTime * 0.5);
    vec2 n1 = normalize(vec2(1.0, mix(-1.0, 1.0, kdP0.z)));
    float trap = 1e3, ring = 1e3;
    for (int i = 0; i < 10; i++) {
        p = abs(p);
        float d = dot(p, n1);
        if (d < 0.0) p -= 2.0 * d * n1;  // mirror across a tilted line
        p = rot(ang) * p * scale - vec2(1.0, 0.5) * (scale - 1.0);
        trap = min(trap, length(p) / pow(scale, float(i + 1)));
        ring = min(ring, abs(p.y) / pow(scale, float(i + 1)));
    }
    vec3 col = pal(trap * mix(3.0, 10.0, kdP0.w) + kdP1.x) * (0.3 + 0.7 * exp(-ring * 40.0));
    fragColor = vec4(col, 1.0);
}
