"""Headless OpenGL rendering for the `shaders` generator: context, programs, atlas renderer, checks.

Modules, one job each: context (open an EGL context), sources (GLSL files and program wrapping),
procedural (compose programs from blocks), imports (read a folder of user shaders), frames
(per-frame inputs drawn from a sample's rng), renderer (compile, draw tiles, read back, downsample),
validate (reject degenerate frames), watchdog (probe untrusted programs in a killable process),
engine (per-worker state: program pool, retries, mixing).
"""
