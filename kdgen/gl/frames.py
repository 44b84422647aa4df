"""Per-frame inputs (time, seed, view, palette, free parameters, Shadertoy extras) drawn from a
sample's rng, packed in the layout kd_setup() reads, and recorded in the sample's metadata.

Values are rounded to a few decimals when drawn, so the metadata is short and exact: the float32
the GPU gets from a recorded "0.1234" is the float32 it got when the frame was first rendered.
"""

from __future__ import annotations

import math

import numpy as np

NVEC = 10  # RGBA32F texels per tile
# recorded name -> float slots in the packed vector (texel i holds slots 4i..4i+3; see prelude.glsl).
# Slots 2 (iFrame) and 3 (iTimeDelta) follow from the time and are not recorded.
FIELDS = {
    "time": [0], "seed": [1], "mouse": [4, 5, 6, 7], "date": [8, 9, 10, 11],
    "zoom": [12], "rotation": [13], "offset": [14, 15],
    "palette": [16, 17, 18, 20, 21, 22, 24, 25, 26, 28, 29, 30],
    "params": list(range(32, 40)),
}
MAX_TIME = 60.0  # seconds of animation a frame is drawn from
FPS = 60.0
LOG_ZOOM = (math.log(0.6), math.log(1.8))


UNIFORMS = 34  # random numbers drawn per frame


def draw_inputs(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One frame's inputs (NVEC*4 float64, already rounded). One rng call: cheap, and the order of
    the uniforms in it is part of the dataset format."""
    return inputs_from_uniforms(rng.random(UNIFORMS)[None], width, height)[0]


def inputs_from_uniforms(u: np.ndarray, width: int, height: int) -> np.ndarray:
    """The inputs (n x NVEC*4) of n frames from their draws (n x UNIFORMS, each one rng.random call), all
    at once: the same values as one frame at a time (elementwise IEEE arithmetic; the zoom's exp per frame
    by math.exp, as ever)."""
    n = len(u)
    v = np.zeros((n, NVEC * 4))
    v[:, 0] = u[:, 0] * MAX_TIME
    v[:, 1] = np.floor(u[:, 1] * (1 << 20))
    v[:, 4:8] = u[:, 2:6] * (width, height, width, height)
    v[:, 8:11] = np.floor(u[:, 6:9] * (30, 12, 28)) + (2000, 0, 1)  # year, month, day
    v[:, 11] = u[:, 9] * 86400.0
    v[:, 12] = [math.exp(LOG_ZOOM[0] + x * (LOG_ZOOM[1] - LOG_ZOOM[0])) for x in u[:, 10].tolist()]
    v[:, 13] = u[:, 11] * 2.0 * math.pi
    v[:, 14:16] = u[:, 12:14] * 4.0 - 2.0
    lo = np.repeat([0.35, 0.25, 0.3, 0.0], 3)  # cosine palette a, b, c, d
    span = np.repeat([0.3, 0.3, 1.3, 1.0], 3)
    v[:, FIELDS["palette"]] = lo + span * u[:, 14:26]
    v[:, 32:40] = u[:, 26:34]
    v = np.round(v, 4)
    v[:, 2] = np.floor(v[:, 0] * FPS)  # iFrame
    v[:, 3] = 1.0 / FPS  # iTimeDelta
    return v


def _derived(v: np.ndarray) -> np.ndarray:
    v[2] = math.floor(v[0] * FPS)  # iFrame
    v[3] = 1.0 / FPS  # iTimeDelta
    return v


def to_meta(v: np.ndarray) -> dict:
    """JSON-able view of a packed vector."""
    x = v.tolist()  # np.round left each value the double nearest a 4-decimal number: short reprs
    out = {name: x[s[0]] if len(s) == 1 else [x[i] for i in s] for name, s in FIELDS.items()}
    out["seed"] = int(out["seed"])
    return out


def from_meta(meta: dict) -> np.ndarray:
    v = np.zeros(NVEC * 4)
    for name, slots in FIELDS.items():
        v[slots] = np.asarray(meta[name], np.float64).reshape(-1)
    return _derived(v)
