// Menger sponge (three levels) raymarched with ambient occlusion from the step count.
float map_menger(vec3 p) {
    float d = sd_box(p, vec3(1.0));
    float s = 1.0;
    for (int m = 0; m < 3; m++) {
        vec3 a = mod(p * s, 2.0) - 1.0;
        s *= 3.0;
        vec3 r = abs(1.0 - 3.0 * abs(a));
        float da = max(r.x, r.y), db = max(r.y, r.z), dc = max(r.z, r.x);
        d = max(d, (min(da, min(db, dc)) - 1.0) / s);
    }
    return d;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = centred(fragCoord) / kdZoom;
    float ang = kdRot + 0.2 * iTime;
    float dist = mix(2.2, 4.0, kdP0.x);
    vec3 ro = vec3(dist * sin(ang), mix(-1.5, 1.5, kdP0.y), -dist * cos(ang));
    vec3 fw = normalize(-ro), rt = normalize(cross(vec3(0, 1, 0), fw)), up = cross(fw, rt);
    vec3 rd = normalize(uv.x * rt + uv.y * up + 1.5 * fw);
    float t = 0.0, steps = 0.0;
    bool hit = false;
    for (int i = 0; i < 64; i++) {
        float d = map_menger(ro + rd * t);
        if (d < 0.002) { hit = true; break; }
        t += d;
        steps += 1.0;
        if (t > 8.0) break;
    }
    vec3 col = pal(uv.y * 0.5 + kdP0.z) * 0.4;
    if (hit) {
        vec3 p = ro + rd * t;
        float ao = 1.0 - steps / 64.0;
        col = pal(length(p) * 0.5 + kdP0.w) * ao * ao * 1.2;
    }
    fragColor = vec4(col, 1.0);
}
