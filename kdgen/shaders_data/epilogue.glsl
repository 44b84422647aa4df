// Entry point shared by all tiled programs: set up the tile, run mainImage, write opaque colour.
out vec4 kdFragColor;

void main() {
    vec2 fc = kd_setup();
    vec4 c = vec4(0.0, 0.0, 0.0, 1.0);
    mainImage(c, fc);
    kdFragColor = vec4(c.rgb, 1.0);
}
