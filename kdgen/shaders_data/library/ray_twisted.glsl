// A twisted rounded box (or torus) raymarched in front of a palette gradient.
float map_twisted(vec3 p) {
    float k = mix(-2.5, 2.5, kdP0.x);
    p.xz = rot(k * p.y + iTime * 0.5) * p.xz;
    float box = sd_box(p, vec3(0.5, 0.9, 0.5) * mix(0.7, 1.1, kdP0.y)) - 0.08;
    float tor = sd_torus(p.xzy, vec2(0.7, 0.25));
    return mix(box, tor, step(0.6, kdP0.z));
}

vec3 normal_twisted(vec3 p) {
    const vec2 e = vec2(0.002, -0.002);
    return normalize(e.xyy * map_twisted(p + e.xyy) + e.yyx * map_twisted(p + e.yyx) +
                     e.yxy * map_twisted(p + e.yxy) + e.xxx * map_twisted(p + e.xxx));
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = centred(fragCoord) / kdZoom;
    vec3 ro = vec3(0.0, 0.0, -3.2);
    vec3 rd = normalize(vec3(uv, 1.6));
    mat2 ry = rot(kdRot), rx = rot(mix(-0.6, 0.6, kdP0.w));
    ro.yz = rx * ro.yz; rd.yz = rx * rd.yz;
    ro.xz = ry * ro.xz; rd.xz = ry * rd.xz;
    float t = 0.0;
    bool hit = false;
    for (int i = 0; i < 56; i++) {
        float d = map_twisted(ro + rd * t);
        if (d < 0.002) { hit = true; break; }
        t += d * 0.8;
        if (t > 8.0) break;
    }
    vec3 col = pal(0.5 * uv.y + kdP1.x) * 0.5;
    if (hit) {
        vec3 p = ro + rd * t;
        vec3 n = normal_twisted(p);
        vec3 l = normalize(vec3(0.5, 0.8, -0.6));
        float diff = clamp(dot(n, l), 0.0, 1.0);
        float rim = pow(1.0 - clamp(-dot(n, rd), 0.0, 1.0), 3.0);
        col = pal(0.3 * p.y + kdP1.y) * (0.25 + 0.75 * diff) + rim * pal(0.8);
    }
    fragColor = vec4(col, 1.0);
}
