"""Fragment-shader images rendered headlessly with OpenGL (moderngl, EGL): our own library of
hand-written families, procedurally composed programs, and imported Shadertoy-style shaders.

The work happens in kdgen/gl/; this module maps the command-line options onto it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from kdgen.errors import UserError
from kdgen.registry import Generator, register
from kdgen.settings import defaults, knob

log = logging.getLogger(__name__)

SOURCES = {"library": ("library",), "procedural": ("procedural",), "both": ("library", "procedural")}


@dataclass(frozen=True)
class ShadersOptions:
    """The `kdgen shaders` options (flags generated from these fields); the defaults of gl/engine.Settings too.

    Defaults measured on a 2-core CPU (llvmpipe), see docs/BENCHMARKS.md: 2x supersampling cuts the
    aliasing error about 3x for 3x the drawing time; 100 procedural programs keep the one-off JIT
    compile of a fresh machine (about 0.13 s per program) inside the 45 s budget for 50,000 images.
    """

    source: str = knob("both", "library, procedural, both, or a folder of shaders: --source DIR renders only DIR's "
                               "shaders (--source library --shader-dir DIR adds them to the library).")
    programs: int = knob(100, "Procedural programs in the pool (proc/0 .. proc/N-1). Each costs a one-off driver "
                              "compile per machine (about 0.1 s on a CPU), cached by the driver afterwards.",
                         min=1, max=10_000_000)
    shader_dir: str | None = knob(None, "Also render the shaders in this folder, beside --source: Shadertoy "
                                        "mainImage() or GLSL with #version. Fails if none of them is usable.")
    supersample: int = knob(2, "Render K times larger and average KxK blocks (anti-aliasing).", min=1, max=8)
    mix: int = knob(1, "Blend this many frames of different programs per image (random convex weights).",
                    min=1, max=8)
    atlas: bool = knob(True, "Draw many frames of a program per draw call (same pixels, faster).")
    probe_timeout: float = knob(10.0, "Seconds an imported shader may take to compile and draw a test frame.",
                                min=0.1)


@register
class Shaders(Generator):
    name = "shaders"
    help = ("Fragment-shader images (the paper's 'OpenGL shaders' source): a library of hand-written "
            "families, procedurally composed programs, or your own Shadertoy-style shaders.")
    batch = 1000  # samples per render() call: more frames of one program per atlas draw
    # 2: PNG pixels stored, not deflated (the same pixels as version 1, other file bytes)
    version = 2
    # deflating a 32 px frame cost about a third of its rendering on a CPU (docs/BENCHMARKS.md, issue 24)
    png_level = 0
    DEFAULTS = defaults(ShadersOptions)
    Options = ShadersOptions

    def __init__(self, size, **params):
        params = {**self.DEFAULTS, **params}
        super().__init__(size, **params)
        from kdgen.gl.engine import Settings
        from kdgen.gl.imports import scan_dir

        source, shader_dir = str(params["source"]), params["shader_dir"]
        if source in SOURCES:
            sources = SOURCES[source]
        elif Path(source).is_dir():
            if shader_dir and Path(shader_dir).resolve() != Path(source).resolve():
                raise UserError("--source DIR and --shader-dir name different folders; give one")
            sources, shader_dir = (), source
        else:
            raise UserError(f"--source must be library, procedural, both or a folder of shaders; "
                             f"{source!r} is none of these")
        self.imports = []
        if shader_dir is not None:
            if not Path(shader_dir).is_dir():
                raise UserError(f"--shader-dir {shader_dir}: no such folder")
            self.imports, skipped = scan_dir(shader_dir)
            for rel, why in skipped:
                log.info("shader file %s skipped: %s", rel, why)
            if not self.imports:
                found = f"{len(skipped)} files skipped ({_reasons(skipped)})" if skipped else "no shader files"
                raise UserError(f"--shader-dir {shader_dir}: no usable shaders, {found}; "
                                 f"expected .glsl/.frag files with mainImage() or main()")
            sources = (*sources, "import")
        self.shader_dir = shader_dir
        self.settings = Settings(sources=sources, programs=params["programs"], supersample=params["supersample"],
                                 mix=params["mix"], atlas=params["atlas"], probe_timeout=params["probe_timeout"])
        self.engine = None
        self.error = None

    def describe(self) -> dict:
        from kdgen.gl.procedural import COMPOSER_VERSION
        from kdgen.gl.sources import data_hash

        out = dict(self.params, shaders_hash=data_hash(), composer=COMPOSER_VERSION)
        if self.shader_dir is not None:
            digest = hashlib.sha1("".join(p.hash for p in self.imports).encode()).hexdigest()[:16]
            out.update(shader_dir=str(Path(self.shader_dir).resolve()), imported=len(self.imports),
                       imports_hash=digest)
        return out

    def open(self) -> None:
        from kdgen.gl.engine import Engine

        self.engine = Engine(self.width, self.height, self.settings, self.imports)
        self.engine.counters = self.counters
        try:
            self.engine.open()
        except UserError as err:
            # raised at the first render(): an exception in a pool initializer would respawn forever
            self.error = err

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def render(self, seeds):
        if self.error is not None:
            raise self.error
        return self.engine.render(seeds)

    def take_counters(self):
        out = super().take_counters()
        if self.engine is not None:
            self.engine.counters = self.counters
        return out


def _reasons(skipped: list[tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for _, why in skipped:
        key = why.split(" (")[0].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
