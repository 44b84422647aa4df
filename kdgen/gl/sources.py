"""GLSL sources: the shipped files under kdgen/shaders_data, and wrapping a body into a full program."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "shaders_data"
VERSION = "#version 330 core\n"
# Full-screen triangle from gl_VertexID: no vertex buffers, and the same for every program.
VERTEX_BODY = ("void main() {\n"
               "    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));\n"
               "    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);\n"
               "}\n")


@dataclass(frozen=True)
class Program:
    """One fragment program, ready to compile.

    kind "tiled": uses the tile prelude, renders many frames per draw. kind "plain": a user's own
    GLSL with its own #version and uniforms (time, resolution, mouse), one frame per draw.
    """

    id: str  # "lib/<family>", "proc/<seed>" or "dir/<relative path>"
    source: str  # "library", "procedural" or "import"
    fragment: str
    vertex: str = ""  # default: a quad per tile (tiled), the full-screen triangle (plain)
    kind: str = "tiled"
    seed: int | None = None  # procedural program seed
    hash: str = field(init=False)  # short sha1 of the fragment source

    def __post_init__(self):
        object.__setattr__(self, "hash", source_hash(self.fragment))
        if not self.vertex:
            vertex = read("tile_vertex.glsl") if self.kind == "tiled" else VERTEX_BODY
            object.__setattr__(self, "vertex", VERSION + vertex)


def source_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@cache
def read(name: str) -> str:
    return (DATA / name).read_text()


def tiled_fragment(body: str, common: bool = True) -> str:
    """Version, tile prelude, (our helpers,) the body with its own line numbers, shared main()."""
    parts = [VERSION, read("prelude.glsl")]
    if common:
        parts.append(read("common.glsl"))
    parts += ["#line 1\n", body, "\n", read("epilogue.glsl")]
    return "".join(parts)


def library_names() -> list[str]:
    return sorted(p.stem for p in (DATA / "library").glob("*.glsl"))


@cache
def library_programs() -> tuple[Program, ...]:
    """The hand-written families, one program each, in name order."""
    return tuple(Program(id=f"lib/{name}", source="library",
                         fragment=tiled_fragment(read(f"library/{name}.glsl"))) for name in library_names())


def data_hash() -> str:
    """One hash over every shipped GLSL file: recorded in the manifest, so a resume notices a changed library."""
    h = hashlib.sha1()
    for path in sorted(DATA.rglob("*.glsl")):
        h.update(path.relative_to(DATA).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
