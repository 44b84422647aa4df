// Vertex stage of every tiled program: one quad per tile (an instance) over the tile's pixels of the
// atlas. The tile's inputs are read here, once per vertex, and reach every fragment of the tile unchanged
// (flat); read per fragment, these ten texel fetches cost about a quarter of a 32 px frame on llvmpipe.
uniform highp sampler2D kdTiles;  // RGBA32F, KD_NVEC texels per tile, one row per tile
uniform ivec2 kdStride;           // tile pitch in pixels (even)
uniform int kdCols;               // tiles per atlas row
uniform int kdFirst;              // the atlas tile of instance 0
uniform vec2 kdTarget;            // the atlas's size in pixels
flat out vec4 kdIn[10];

void main() {
    int tile = kdFirst + gl_InstanceID;
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1));  // a triangle strip of 4
    vec2 pixel = (vec2(float(tile % kdCols), float(tile / kdCols)) + corner) * vec2(kdStride);
    gl_Position = vec4(pixel / kdTarget * 2.0 - 1.0, 0.0, 1.0);
    for (int i = 0; i < 10; i++) kdIn[i] = texelFetch(kdTiles, ivec2(i, tile), 0);
}
