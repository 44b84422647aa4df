"""Read a folder of user shaders: Shadertoy-style (mainImage) or plain GLSL (main, own #version).

Files that cannot be programs are skipped with a reason, never fatal: empty, binary, too large,
no entry point. Compiling and timing them happens later (watchdog.py, renderer.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from kdgen.gl.sources import VERTEX_BODY, Program, tiled_fragment

EXTENSIONS = (".glsl", ".frag", ".fs", ".fsh", ".shader", ".txt")
MAX_BYTES = 1 << 20
SHADERTOY_UNIFORMS = ("iResolution", "iTime", "iTimeDelta", "iFrameRate", "iFrame", "iChannelTime",
                      "iChannelResolution", "iMouse", "iDate", "iSampleRate", "iGlobalTime",
                      "iChannel0", "iChannel1", "iChannel2", "iChannel3")
COMMENTS_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
MAIN_IMAGE_RE = re.compile(r"\bvoid\s+mainImage\s*\(")
MAIN_RE = re.compile(r"\bvoid\s+main\s*\(\s*(void)?\s*\)")
VERSION_RE = re.compile(r"^[ \t]*#[ \t]*version[ \t]+(\d+)([ \t]+\w+)?[ \t]*$", re.M)
# a Shadertoy export sometimes declares the inputs itself; the prelude already does
UNIFORM_DECL_RE = re.compile(r"^[ \t]*uniform\s+\w+\s+(" + "|".join(SHADERTOY_UNIFORMS) + r")\b[^;]*;[ \t]*$", re.M)


def scan_dir(root: str | Path) -> tuple[list[Program], list[tuple[str, str]]]:
    """Programs from every shader file under `root` (sorted), and (file, reason) for each one skipped."""
    root = Path(root)
    programs, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS):
        rel = path.relative_to(root).as_posix()
        program = None
        try:
            program = load_file(path, rel)
        except ValueError as err:
            skipped.append((rel, str(err)))
        except OSError as err:
            skipped.append((rel, f"unreadable: {err.strerror or err}"))
        if program is not None:
            programs.append(program)
    return programs, skipped


def load_file(path: Path, rel: str) -> Program:
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ValueError(f"too large ({len(raw)} bytes; a shader is under {MAX_BYTES})")
    if b"\0" in raw:
        raise ValueError("binary data, not GLSL text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not text.strip():
        raise ValueError("empty file")
    return from_text(text, f"dir/{rel}")


def from_text(text: str, program_id: str) -> Program:
    code = COMMENTS_RE.sub(" ", text)
    has_main = MAIN_RE.search(code) is not None
    if MAIN_IMAGE_RE.search(code) and not has_main:
        return shadertoy_program(text, program_id)
    if has_main:
        return plain_program(text, program_id)
    raise ValueError("no entry point: neither mainImage(out vec4, in vec2) nor void main()")


def shadertoy_program(text: str, program_id: str) -> Program:
    body = UNIFORM_DECL_RE.sub("", VERSION_RE.sub("", text))
    return Program(id=program_id, source="import", fragment=tiled_fragment(body, common=False))


def plain_program(text: str, program_id: str) -> Program:
    """Modern GLSL (#version 130+ or 300 es) keeps its own version; legacy or unversioned code (the
    glslsandbox dialect: gl_FragColor, texture2D) is lifted to 330 core with a few renames."""
    match = VERSION_RE.search(text)
    version = int(match.group(1)) if match else 0
    if version >= 130:
        line = match.group(0).strip()
        return Program(id=program_id, source="import", fragment=text, kind="plain",
                       vertex=f"{line}\n{VERTEX_BODY}")
    body = VERSION_RE.sub("", text)
    body = re.sub(r"\bgl_FragColor\b", "kdFragColor", body)
    body = re.sub(r"\btexture2D\b", "texture", body)
    body = re.sub(r"^[ \t]*varying\s+[^;]*;", "", body, flags=re.M)
    fragment = "#version 330 core\nout vec4 kdFragColor;\n#line 1\n" + body
    return Program(id=program_id, source="import", fragment=fragment, kind="plain")
