// Shared helpers for the library families and the procedural blocks: hashes, noise, palettes, SDFs.
// Hashes are integer mixes rather than fract(sin(x) * big): the same bits on every conforming
// implementation and no precision cliff for large coordinates.

const float PI = 3.14159265;
const float TAU = 6.28318531;

uint mix32(uint x) {
    x ^= x >> 16;
    x *= 0x9e3779b1u;
    x ^= x >> 13;
    x *= 0x85ebca77u;
    x ^= x >> 16;
    return x;
}

uint seed_u() { return uint(kdSeed); }

// Hash of an integer lattice point, salted by the frame seed: spread the coordinates with two odd
// multipliers, then one full avalanche mix.
uint hash_cell(vec2 c) {
    ivec2 i = ivec2(floor(c));
    return mix32(uint(i.x) * 0x8da6b343u ^ uint(i.y) * 0xd8163841u ^ seed_u() * 0xcb1ab31fu);
}

float u01(uint h) { return float(h >> 8) * (1.0 / 16777216.0); }

float hash21(vec2 c) { return u01(hash_cell(c)); }
vec2 hash22(vec2 c) { uint h = hash_cell(c); return vec2(u01(h), u01(mix32(h))); }
vec3 hash23(vec2 c) { uint h = hash_cell(c); uint g = mix32(h); return vec3(u01(h), u01(g), u01(mix32(g))); }
float hash11(float x) { return u01(mix32(uint(int(floor(x))) * 0x8da6b343u ^ seed_u() * 0xcb1ab31fu)); }

mat2 rot(float a) { float c = cos(a), s = sin(a); return mat2(c, s, -s, c); }

// Value noise in [0, 1] with a smooth quintic fade.
float vnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * f * (f * (f * 6.0 - 15.0) + 10.0);
    float a = hash21(i), b = hash21(i + vec2(1, 0)), c = hash21(i + vec2(0, 1)), d = hash21(i + vec2(1, 1));
    return mix(mix(a, b, u.x), mix(c, d, u.x), u.y);
}

// Gradient noise in about [-1, 1].
float gnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    vec2 ga = hash22(i) * 2.0 - 1.0, gb = hash22(i + vec2(1, 0)) * 2.0 - 1.0;
    vec2 gc = hash22(i + vec2(0, 1)) * 2.0 - 1.0, gd = hash22(i + vec2(1, 1)) * 2.0 - 1.0;
    float a = dot(ga, f), b = dot(gb, f - vec2(1, 0)), c = dot(gc, f - vec2(0, 1)), d = dot(gd, f - vec2(1, 1));
    return 1.4 * mix(mix(a, b, u.x), mix(c, d, u.x), u.y);
}

// Fractal sums. The octave count is a runtime value on purpose: a loop the compiler cannot unroll
// keeps the program small, and program size is what JIT compilers (llvmpipe) spend their time on.
float fbm(vec2 p, int octaves) {
    float s = 0.0, a = 0.5, norm = 0.0;
    mat2 m = mat2(1.6, 1.2, -1.2, 1.6);
    for (int i = 0; i < octaves; i++) {
        s += a * vnoise(p);
        norm += a;
        p = m * p + 17.13;
        a *= 0.5;
    }
    return s / norm;
}

float ridged(vec2 p, int octaves) {
    float s = 0.0, a = 0.5, norm = 0.0;
    mat2 m = mat2(1.7, 1.1, -1.1, 1.7);
    for (int i = 0; i < octaves; i++) {
        float n = 1.0 - abs(gnoise(p));
        s += a * n * n;
        norm += a;
        p = m * p + 9.7;
        a *= 0.5;
    }
    return s / norm;
}

// Octaves drawn per frame from a free parameter: 3..6.
int octaves_of(float u) { return 3 + int(u * 3.99); }

// Worley / Voronoi: x = nearest distance, y = second nearest, z = id of the nearest cell in [0, 1).
vec3 voronoi(vec2 p, float jitter, float speed) {
    vec2 n = floor(p), f = fract(p);
    float d1 = 8.0, d2 = 8.0, id = 0.0;
    for (int j = -1; j <= 1; j++) {
        for (int i = -1; i <= 1; i++) {
            vec2 g = vec2(i, j);
            vec2 h = hash22(n + g);
            vec2 o = 0.5 + jitter * 0.5 * sin(iTime * speed + TAU * h);
            vec2 r = g + o - f;
            float d = dot(r, r);
            if (d < d1) { d2 = d1; d1 = d; id = h.x; } else if (d < d2) { d2 = d; }
        }
    }
    return vec3(sqrt(d1), sqrt(d2), id);
}

vec3 pal(float t) { return kdPalA + kdPalB * cos(TAU * (kdPalC * t + kdPalD)); }

vec3 hsv2rgb(vec3 c) {
    vec3 k = clamp(abs(mod(c.x * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0);
    return c.z * mix(vec3(1.0), k, c.y);
}

// Centred coordinates: the short side spans [-1, 1].
vec2 centred(vec2 fc) { return (2.0 * fc - iResolution.xy) / min(iResolution.x, iResolution.y); }

// Centred coordinates under the frame's random view (zoom, rotation, offset).
vec2 view(vec2 fc) { return rot(kdRot) * centred(fc) / kdZoom + kdOffset; }

float smin(float a, float b, float k) {
    float h = clamp(0.5 + 0.5 * (b - a) / k, 0.0, 1.0);
    return mix(b, a, h) - k * h * (1.0 - h);
}

float sd_circle(vec2 p, float r) { return length(p) - r; }
float sd_box2(vec2 p, vec2 b) { vec2 d = abs(p) - b; return length(max(d, 0.0)) + min(max(d.x, d.y), 0.0); }
float sd_segment(vec2 p, vec2 a, vec2 b) {
    vec2 pa = p - a, ba = b - a;
    return length(pa - ba * clamp(dot(pa, ba) / dot(ba, ba), 0.0, 1.0));
}
// Regular n-gon of circumradius-like size r (folds the plane into one sector).
float sd_ngon(vec2 p, float n, float r) {
    float a = atan(p.y, p.x), s = TAU / n;
    a = mod(a + 0.5 * s, s) - 0.5 * s;
    return length(p) * cos(a) - r;
}
float sd_sphere(vec3 p, float r) { return length(p) - r; }
float sd_box(vec3 p, vec3 b) { vec3 d = abs(p) - b; return length(max(d, 0.0)) + min(max(d.x, max(d.y, d.z)), 0.0); }
float sd_torus(vec3 p, vec2 t) { return length(vec2(length(p.xz) - t.x, p.y)) - t.y; }

// Hexagonal cell coordinates: xy = offset from the cell centre, zw = cell id.
vec4 hex_cell(vec2 p) {
    const vec2 s = vec2(1.0, 1.7320508);
    vec2 a = mod(p, s) - 0.5 * s;
    vec2 b = mod(p - 0.5 * s, s) - 0.5 * s;
    vec2 g = dot(a, a) < dot(b, b) ? a : b;
    return vec4(g, p - g);
}
float hex_dist(vec2 g) { g = abs(g); return max(dot(g, normalize(vec2(1.0, 1.7320508))), g.x); }

// Gentle contrast curve, keeps colours off the clipping rails.
vec3 tone(vec3 c) { return clamp(c, 0.0, 1.0); }
