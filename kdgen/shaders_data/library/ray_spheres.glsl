// Raymarched lattice of spheres with diffuse light, specular and fog.
float map_spheres(vec3 p, float r) {
    vec3 q = mod(p + 1.0, 2.0) - 1.0;
    return length(q) - r;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = rot(kdRot * 0.2) * centred(fragCoord);
    // start on a corridor between spheres (odd x, y): never inside one
    vec3 ro = vec3(floor(kdOffset * 3.0) * 2.0 + 1.0, iTime * mix(0.2, 1.0, kdP0.x));
    vec3 rd = normalize(vec3(uv, mix(1.0, 2.0, kdP0.y)));
    rd.xy = rot(kdP0.z * TAU) * rd.xy;
    rd.yz = rot(kdP0.w - 0.5) * rd.yz;
    float r = mix(0.25, 0.6, kdP1.x);
    float t = 0.0, d = 1.0;
    for (int i = 0; i < 48; i++) {
        d = map_spheres(ro + rd * t, r);
        if (d < 0.002 || t > 20.0) break;
        t += d;
    }
    vec3 p = ro + rd * t;
    vec3 cell = floor((p + 1.0) * 0.5);
    vec3 n = normalize(mod(p + 1.0, 2.0) - 1.0);
    vec3 l = normalize(vec3(0.6, 0.7, -0.4));
    float diff = clamp(dot(n, l), 0.0, 1.0);
    float spec = pow(clamp(dot(reflect(rd, n), l), 0.0, 1.0), 24.0);
    vec3 col = pal(hash21(cell.xy + cell.z * 17.0)) * (0.2 + 0.8 * diff) + spec;
    col = mix(col, pal(0.9) * 0.3, 1.0 - exp(-0.12 * t));
    fragColor = vec4(col, 1.0);
}
