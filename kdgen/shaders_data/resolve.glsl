// Resolve pass: each output pixel averages its supersample x supersample block of the rendered atlas
// (a box filter: the exact area average for an integer factor). Non-finite colours count as black
// and are tallied in alpha, so NaN/inf garbage is measured instead of silently clamped.
uniform highp sampler2D kdFrame;  // RGBA32F atlas at the render resolution
uniform int kdSS;
out vec4 kdOut;

void main() {
    ivec2 base = ivec2(gl_FragCoord.xy) * kdSS;
    vec4 acc = vec4(0.0);
    for (int j = 0; j < kdSS; j++) {
        for (int i = 0; i < kdSS; i++) {
            vec3 c = texelFetch(kdFrame, base + ivec2(i, j), 0).rgb;
            bool bad = any(isnan(c)) || any(isinf(c));
            acc += bad ? vec4(0.0, 0.0, 0.0, 1.0) : vec4(clamp(c, 0.0, 1.0), 0.0);
        }
    }
    kdOut = acc / float(kdSS * kdSS);
}
