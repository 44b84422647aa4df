"""Procedural programs: a new fragment program composed from GLSL blocks, deterministically from a seed.

A program is coordinate transforms -> two or three pattern fields -> combining operators -> a colour
map -> a finishing touch. Blocks live in kdgen/shaders_data/blocks/*.glsl, one function each, with a
"// cost N" line that the composer reads; a program's total cost is capped so every program stays
cheap enough for the dataset-scale frame rate. Each block call gets literal constants (fixed per
program) blended with the frame's free parameters (different in every frame of the program).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from kdgen.gl.sources import Program, read, tiled_fragment

COMPOSER_VERSION = 1  # part of the program seed: bump it when the rules below change
MAX_COST = 10  # per-pixel cost budget, in units of the cheapest block
FILES = {"T": "transforms", "F": "fields", "C": "combine", "M": "colour", "P": "post"}
BLOCK_RE = re.compile(r"^// cost (\d+)\n((?:vec2|vec3|float) ([TFCMP])_(\w+)\(.*?\n\}\n)", re.M | re.S)


@dataclass(frozen=True)
class Block:
    kind: str  # T, F, C, M or P
    name: str  # e.g. "T_swirl"
    cost: int
    text: str  # the GLSL function


@cache
def blocks() -> dict[str, tuple[Block, ...]]:
    """Every block, by kind, in file order."""
    out = {}
    for kind, stem in FILES.items():
        found = [Block(k, f"{k}_{name}", int(cost), text)
                 for cost, text, k, name in BLOCK_RE.findall(read(f"blocks/{stem}.glsl"))]
        if not found or any(b.kind != kind for b in found):
            raise ValueError(f"blocks/{stem}.glsl: expected '// cost N' + {kind}_name functions")
        out[kind] = tuple(found)
    return out


def _pick(rng, kind: str, exclude: tuple[str, ...] = ()) -> Block:
    choices = [b for b in blocks()[kind] if b.name not in exclude]
    return choices[int(rng.integers(len(choices)))]


def structure(seed: int) -> dict:
    """The program's shape: which blocks, in which roles (drawn from the program seed alone)."""
    rng = np.random.default_rng([COMPOSER_VERSION, seed])
    while True:
        n_t = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.4, 0.3, 0.15]))
        s = {"transforms": [_pick(rng, "T") for _ in range(n_t)]}
        s["field_a"] = _pick(rng, "F")
        s["field_b"] = _pick(rng, "F", (s["field_a"].name,))
        s["transform_b"] = _pick(rng, "T") if rng.random() < 0.5 else None
        s["combine"] = _pick(rng, "C")
        s["field_c"] = _pick(rng, "F", (s["field_a"].name, s["field_b"].name)) if rng.random() < 0.3 else None
        s["combine_c"] = _pick(rng, "C", ("C_first",)) if s["field_c"] else None
        s["colour"] = _pick(rng, "M")
        s["post"] = _pick(rng, "P") if rng.random() < 0.6 else blocks()["P"][0]
        used = [b for b in _flatten(s)]
        if sum(b.cost for b in used) <= MAX_COST:
            s["rng"] = rng  # the literals come from the same stream, after the shape
            return s


def _flatten(s: dict) -> list[Block]:
    out = list(s["transforms"])
    out += [b for key in ("field_a", "field_b", "transform_b", "combine", "field_c", "combine_c", "colour",
                          "post") if (b := s[key]) is not None]
    return out


def _args(rng) -> str:
    """Literal constants for one block call, sometimes blended with a frame parameter vector."""
    lit = "vec4(" + ", ".join(f"{x:.3f}" for x in rng.random(4)) + ")"
    weight = float(rng.choice([0.0, 0.2, 0.4]))
    if weight == 0.0:
        return lit
    return f"mix({lit}, {'kdP0' if rng.random() < 0.5 else 'kdP1'}, {weight:.1f})"


def compose(seed: int) -> str:
    """GLSL body (mainImage and the blocks it uses) of procedural program `seed`."""
    s = structure(seed)
    rng = s["rng"]
    used = _flatten(s)
    names = " ".join(b.name[2:] for b in used)
    lines = [f"// procedural program {seed} (composer v{COMPOSER_VERSION}): {names}"]
    seen = set()
    for b in used:
        if b.name not in seen:
            seen.add(b.name)
            lines.append(b.text)
    lines.append("vec3 kd_program(vec2 p) {")
    for t in s["transforms"]:
        lines.append(f"    p = {t.name}(p, {_args(rng)});")
    lines.append(f"    float a = {s['field_a'].name}(p, {_args(rng)});")
    pb = f"{s['transform_b'].name}(p, {_args(rng)})" if s["transform_b"] else "p"
    lines.append(f"    float b = {s['field_b'].name}({pb}, {_args(rng)});")
    lines.append(f"    float v = {s['combine'].name}(a, b, {_args(rng)});")
    if s["field_c"]:
        lines.append(f"    v = {s['combine_c'].name}(v, {s['field_c'].name}(p, {_args(rng)}), {_args(rng)});")
    lines.append(f"    return {s['colour'].name}(v, b, p, {_args(rng)});")
    lines.append("}")
    scale = rng.uniform(0.5, 1.5)
    lines += ["void mainImage(out vec4 fragColor, in vec2 fragCoord) {",
              f"    vec3 col = kd_program(view(fragCoord) * {scale:.3f});",
              f"    fragColor = vec4({s['post'].name}(col, centred(fragCoord), {_args(rng)}), 1.0);",
              "}"]
    return "\n".join(lines) + "\n"


def procedural_program(seed: int) -> Program:
    return Program(id=f"proc/{seed}", source="procedural", fragment=tiled_fragment(compose(seed)), seed=seed)


def signature(seed: int) -> tuple[str, ...]:
    """Block names by role: two programs with the same signature differ only in their constants."""
    s = structure(seed)
    return tuple(b.name if b else "-" for b in [*s["transforms"], s["field_a"], s["transform_b"], s["field_b"],
                                                 s["combine"], s["field_c"], s["combine_c"], s["colour"],
                                                 s["post"]])
