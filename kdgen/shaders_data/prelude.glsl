// Tile prelude, prepended to every library, procedural and Shadertoy-style program.
// One draw renders many frames side by side (an atlas), a quad per tile (tile_vertex.glsl). Each
// tile gets its own inputs from its row of the inputs texture, and the program only sees tile-local
// pixel coordinates, so a frame's pixels are the same whatever its place in the atlas, or whether
// there is an atlas at all.
flat in vec4 kdIn[10];            // the tile's inputs (KD_NVEC texels), read by the vertex stage
uniform ivec2 kdStride;           // tile pitch (even, so 2x2 derivative quads never straddle tiles)

// Shadertoy inputs: constant per draw ...
uniform vec3 iResolution;
uniform vec3 iChannelResolution[4];
uniform float iSampleRate;
uniform sampler2D iChannel0;
uniform sampler2D iChannel1;
uniform sampler2D iChannel2;
uniform sampler2D iChannel3;
// ... and per tile (filled in by kd_setup from the tile's row).
float iTime;
float iTimeDelta;
float iFrameRate;
int iFrame;
float iChannelTime[4];
vec4 iMouse;
vec4 iDate;

// Our own per-frame inputs, used by the library and the procedural programs.
float kdSeed;    // integer-valued, feeds the hashes
float kdZoom;
float kdRot;
vec2 kdOffset;
vec3 kdPalA;     // cosine palette a + b * cos(2 pi (c t + d))
vec3 kdPalB;
vec3 kdPalC;
vec3 kdPalD;
vec4 kdP0;       // free parameters in [0, 1), each family maps them to its own ranges
vec4 kdP1;

vec4 kd_fetch(int i) { return kdIn[i]; }

// Fills the per-tile inputs and returns the tile-local fragment coordinate.
vec2 kd_setup() {
    ivec2 cell = ivec2(gl_FragCoord.xy) / kdStride;
    vec4 v0 = kd_fetch(0);
    iTime = v0.x;
    kdSeed = v0.y;
    iFrame = int(v0.z);
    iTimeDelta = v0.w;
    iFrameRate = 1.0 / v0.w;
    for (int i = 0; i < 4; i++) iChannelTime[i] = v0.x;
    iMouse = kd_fetch(1);
    iDate = kd_fetch(2);
    vec4 v3 = kd_fetch(3);
    kdZoom = v3.x;
    kdRot = v3.y;
    kdOffset = v3.zw;
    kdPalA = kd_fetch(4).xyz;
    kdPalB = kd_fetch(5).xyz;
    kdPalC = kd_fetch(6).xyz;
    kdPalD = kd_fetch(7).xyz;
    kdP0 = kd_fetch(8);
    kdP1 = kd_fetch(9);
    return gl_FragCoord.xy - vec2(cell * kdStride);
}
