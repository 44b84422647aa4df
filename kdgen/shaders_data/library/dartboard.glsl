// Polar grid: sectors and rings in alternating colours, rings turning at different rates.
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = centred(fragCoord) / kdZoom - 0.3 * (kdP0.xy - 0.5);
    float r = length(p);
    float ringw = mix(0.08, 0.25, kdP0.z);
    float ring = floor(r / ringw);
    float a = atan(p.y, p.x) + iTime * 0.2 * sin(ring * 1.7) + kdRot;
    float sectors = floor(mix(4.0, 24.0, kdP0.w));
    float sec = floor(a / TAU * sectors);
    float parity = mod(ring + sec, 2.0);
    vec3 col = pal(ring * mix(0.05, 0.3, kdP1.x) + parity * 0.5);
    fragColor = vec4(col, 1.0);
}
