"""Noise images: gaussian, uniform, spectral 1/f^alpha, Perlin fBm, or a mix of them.

Small noise images cost little per pixel and much per numpy call, so a batch is made together:
every image draws its randomness from its own stream, in a fixed order (so it never depends on its
batch), then each variant's arithmetic runs once over all of the batch's images of that variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kdgen.registry import Generator, register
from kdgen.settings import knob

VARIANTS = ("gaussian", "uniform", "spectral", "perlin")
PIXELS_PER_CALL = 1 << 18  # images computed together, in pixels: 256 at 32 px, 16 at 128 px


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite numbers, got {text!r}")
    return values


def _stretch(fields: np.ndarray) -> np.ndarray:
    """Map each field (leading axis) to [0, 1] by its own range, so every image uses the full range."""
    flat = fields.reshape(len(fields), -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    scale = 1.0 / np.maximum(hi - lo, 1e-12)
    return (flat - lo[:, None]) * scale[:, None]


@lru_cache(maxsize=16)
def _log_frequency(h: int, w: int) -> np.ndarray:
    """log of the radial frequency on the rfft grid (0 at the DC term, which is zeroed anyway)."""
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    f[0, 0] = 1.0
    return np.log(f)


def spectral_fields(spectra: np.ndarray, alphas: np.ndarray, h: int, w: int) -> np.ndarray:
    """Fields (F, h, w) whose power spectra fall as 1/f^alpha, from white complex spectra (F, h, w//2+1)."""
    amp = np.exp(_log_frequency(h, w) * (-np.asarray(alphas)[:, None, None] / 2.0))  # sqrt of power
    amp[:, 0, 0] = 0.0
    return np.fft.irfft2(spectra * amp, s=(h, w))


def _fade(t):
    return t * t * t * (t * (t * 6 - 15) + 10)


# Perlin's gradient set: lattice points pick one of 16 unit directions (cheaper than a random angle
# each); index 16 is a zero gradient, which pads lattices when fields of several sizes are stacked
GRADIENTS = np.append(np.exp(1j * np.pi * np.arange(16) / 8), 0)
GRAD_X, GRAD_Y = GRADIENTS.real.copy(), GRADIENTS.imag.copy()


def draw_fbm(rng, h: int, w: int, octaves: int, base_cells: float) -> tuple:
    """The randomness of one fBm field: octave o has base_cells * 2^o lattice cells across the width.

    Octaves finer than two pixels per lattice cell are left out: they would only alias into white
    noise. Returns (cells per octave, gradient index per lattice point (O, NY, NX), offsets (2, O)).
    """
    cells = base_cells * 2.0 ** np.arange(octaves)
    cells = cells[: max(1, int((cells <= max(w, h) / 2).sum()))]
    nx = int(np.ceil(cells[-1])) + 2  # one spare column for the random offset
    ny = int(np.ceil(cells[-1] * h / w)) + 2
    pick = (rng.random((len(cells), ny, nx)) * 16).astype(np.intp)
    return cells, pick, rng.random((2, len(cells)))


def _interpolation(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Perlin's interpolation along one axis as matrices (..., n, m) from lattice coordinates (..., m):
    the faded weights of the two lattice lines around each pixel, and those weights times the
    pixel's offset from each line (which multiplies the gradient component along this axis)."""
    c0 = coords.astype(np.intp)
    t = coords - c0
    s = _fade(t)
    lower, upper = c0[..., None, :], c0[..., None, :] + 1
    plain = np.zeros(coords.shape[:-1] + (n, coords.shape[-1]))
    offset = np.zeros_like(plain)
    np.put_along_axis(plain, lower, (1 - s)[..., None, :], axis=-2)
    np.put_along_axis(plain, upper, s[..., None, :], axis=-2)
    np.put_along_axis(offset, lower, ((1 - s) * t)[..., None, :], axis=-2)
    np.put_along_axis(offset, upper, (s * (t - 1))[..., None, :], axis=-2)
    return plain, offset


def fbm_fields(draws: list, h: int, w: int, gain: float = 0.5) -> np.ndarray:
    """Fractal Brownian motion fields (F, h, w) from draw_fbm's draws: per field, the sum over octaves
    of Perlin gradient noise at gain^o times the amplitude (about [-1, 1] per octave).

    Perlin noise is separable: with G the lattice's gradient components and W the interpolation
    matrices, an octave is Wy^T Gx Wx_offset + Wy_offset^T Gy Wx, so all octaves of all fields are a
    few batched matrix products (lattices padded with zero gradients to a common size).
    """
    octaves = max(len(d[0]) for d in draws)
    ny = max(d[1].shape[1] for d in draws)
    nx = max(d[1].shape[2] for d in draws)
    pick = np.full((len(draws), octaves, ny, nx), 16, dtype=np.intp)
    cells = np.ones((len(draws), octaves))
    amp = np.zeros((len(draws), octaves))  # padded octaves weigh nothing
    offset = np.zeros((2, len(draws), octaves))
    for f, (c, p, off) in enumerate(draws):
        o, y, x = p.shape
        pick[f, :o, :y, :x] = p
        cells[f, :o] = c
        amp[f, :o] = gain ** np.arange(o) * np.sqrt(2)
        offset[:, f, :o] = off
    step = (cells / w)[..., None]  # lattice units per pixel, the same along both axes
    wy, wy_offset = _interpolation((np.arange(h) + 0.5) * step + offset[0][..., None], ny)
    wx, wx_offset = _interpolation((np.arange(w) + 0.5) * step + offset[1][..., None], nx)
    along_x = GRAD_X[pick] @ wx_offset  # (F, O, NY, w)
    along_y = GRAD_Y[pick] @ wx
    left = np.concatenate([wy, wy_offset], axis=2) * amp[..., None, None]  # (F, O, 2 NY, h)
    right = np.concatenate([along_x, along_y], axis=2)  # (F, O, 2 NY, w)
    f = len(draws)
    return left.transpose(0, 3, 1, 2).reshape(f, h, -1) @ right.reshape(f, -1, w)


def fbm(rng, h: int, w: int, octaves: int, base_cells: float, gain: float = 0.5) -> np.ndarray:
    """One fBm field (h, w); see draw_fbm and fbm_fields."""
    return fbm_fields([draw_fbm(rng, h, w, octaves, base_cells)], h, w, gain)[0]


@dataclass(frozen=True)
class NoiseOptions:
    """The `kdgen noise` options (flags generated from these fields)."""

    variant: str = knob("mixed", "gaussian | uniform | spectral | perlin | mixed.", choices=VARIANTS + ("mixed",))
    channels: int = knob(3, "3 (RGB) or 1 (grey).")
    mean: str = knob("0.5", "Gaussian mean, one value or one per channel.")
    std: str = knob("0.25", "Gaussian std, one value or one per channel.")
    alpha: str = knob("1.0,3.0", "Spectral exponent range lo,hi (per image).")
    correlated: bool = knob(True, "Spectral/Perlin colour: one field tinted by a random colour mix, or one field "
                                  "per channel.", flag="--correlated/--independent")
    octaves: int = knob(5, "Perlin fBm octaves (octaves finer than 2 pixels per lattice cell are left out: they "
                           "alias).")


@register
class Noise(Generator):
    name = "noise"
    version = 2  # 2: computed over a batch of images at once (other images than version 1)
    help = ("Noise images: gaussian (a dataset's mean/std), uniform, spectral 1/f^alpha, Perlin fBm, or mixed. "
            "The paper's weakest surrogate, and the one the boundary attack lifts most.")
    Options = NoiseOptions

    def __init__(self, size, **params):
        super().__init__(size)
        o = NoiseOptions(**params)
        variant, channels, mean, std, alpha, correlated, octaves = (o.variant, o.channels, o.mean, o.std, o.alpha,
                                                                    o.correlated, o.octaves)
        if variant not in VARIANTS + ("mixed",):
            raise ValueError(f"unknown noise --variant {variant!r}; choose {', '.join(VARIANTS + ('mixed',))}")
        if channels not in (1, 3):
            raise ValueError(f"--channels must be 1 or 3, got {channels}")
        self.mean = self._per_channel(_floats(mean, "--mean"), channels, "--mean")
        self.std = self._per_channel(_floats(std, "--std"), channels, "--std")
        if min(self.std) < 0:
            raise ValueError(f"--std must not be negative, got {std}")
        a = _floats(alpha, "--alpha")
        if len(a) > 2 or a[0] > a[-1]:
            raise ValueError(f"--alpha must be one exponent or a range lo,hi with lo <= hi, got {alpha!r}")
        self.alpha = (a[0], a[-1])
        if not 1 <= octaves <= 12:
            raise ValueError(f"--octaves must be in 1..12, got {octaves}")
        self.variant, self.channels, self.correlated, self.octaves = variant, channels, correlated, octaves
        self._mean = np.array(self.mean, dtype=np.float32)
        self._std = np.array(self.std, dtype=np.float32)
        self.params = dict(variant=variant, channels=channels, mean=self.mean, std=self.std, alpha=list(self.alpha),
                           correlated=correlated, octaves=octaves)

    @staticmethod
    def _per_channel(values, channels, what):
        if len(values) == 1:
            return values * channels
        if len(values) != channels:
            raise ValueError(f"{what} needs 1 or {channels} values, got {len(values)}")
        return values

    def render_rngs(self, rngs) -> list:
        per_call = max(1, PIXELS_PER_CALL // (self.height * self.width))  # bounds the batch's memory
        if len(rngs) > per_call:
            return [out for i in range(0, len(rngs), per_call) for out in self.render_rngs(rngs[i:i + per_call])]
        if self.variant == "mixed":
            variants = [VARIANTS[rng.integers(len(VARIANTS))] for rng in rngs]
        else:
            variants = [self.variant] * len(rngs)
        out: list = [None] * len(rngs)
        for variant in VARIANTS:
            which = [i for i, v in enumerate(variants) if v == variant]
            if which:
                images, params = getattr(self, f"_{variant}")([rngs[i] for i in which])
                for i, img, p in zip(which, images, params):
                    out[i] = (img[..., 0] if self.channels == 1 else img, {"variant": variant, **p})
        return out

    def _gaussian(self, rngs):
        h, w, c = self.height, self.width, self.channels
        half = -(-h * w * c // 2)
        u = np.stack([rng.random((2, half), dtype=np.float32) for rng in rngs])
        # Box-Muller: two uniforms -> two independent standard normals, exact and, vectorised over the
        # batch, several times cheaper than drawing normals one image at a time
        radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))  # 1 - u lies in (0, 1]: no log(0)
        angle = np.float32(2 * np.pi) * u[:, 1]
        z = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, : h * w * c]
        x = z.reshape(len(rngs), h, w, c) * (self._std * 255) + (self._mean * 255 + 0.5)
        return np.clip(x, 0, 255.49).astype(np.uint8), [{}] * len(rngs)

    def _uniform(self, rngs):  # every byte value equally likely
        h, w, c = self.height, self.width, self.channels
        return [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for rng in rngs], [{}] * len(rngs)

    def _spectral(self, rngs):
        h, w = self.height, self.width
        fields = 1 if self.correlated else self.channels
        alphas, spectra, ramps = [], [], []
        for rng in rngs:  # each image's draws, in a fixed order
            alphas.append(float(rng.uniform(*self.alpha)))
            # white complex spectrum: (real, imaginary) pairs of standard normals
            spectra.append(rng.standard_normal((fields, h, w // 2 + 1, 2)).view(np.complex128)[..., 0])
            ramps.append(self._draw_ramp(rng))
        x = spectral_fields(np.concatenate(spectra), np.repeat(alphas, fields), h, w)
        return self._to_images(x, ramps), [{"alpha": a} for a in alphas]

    def _perlin(self, rngs):
        h, w = self.height, self.width
        fields = 1 if self.correlated else self.channels
        cells, draws, ramps = [], [], []
        for rng in rngs:  # each image's draws, in a fixed order
            cells.append(float(rng.uniform(1.5, 6.0)))
            draws += [draw_fbm(rng, h, w, self.octaves, cells[-1]) for _ in range(fields)]
            ramps.append(self._draw_ramp(rng))
        return self._to_images(fbm_fields(draws, h, w), ramps), [{"cells": c} for c in cells]

    def _draw_ramp(self, rng):
        """Correlated colour: the two ends of a random colour ramp (none for grey or independent)."""
        if self.correlated and self.channels == 3:
            return rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        return None

    def _to_images(self, fields: np.ndarray, ramps: list) -> np.ndarray:
        """uint8 images (N, h, w, C) from N * F fields, each stretched to its own range; one field per
        image is coloured along that image's ramp, one field per channel is used as it is."""
        n, h, w = len(ramps), self.height, self.width
        t = _stretch(fields).reshape(n, -1, h, w)
        if ramps[0] is None:
            # t in [0, 1] keeps every value in [0.5, 255.5): truncation rounds, no clipping needed
            return (t.transpose(0, 2, 3, 1) * 255.0 + 0.5).astype(np.uint8)
        a = np.array([r[0] for r in ramps], dtype=np.float32)[:, None, None, :]
        b = np.array([r[1] for r in ramps], dtype=np.float32)[:, None, None, :]
        t = t[:, 0, :, :, None].astype(np.float32)
        return (t * ((b - a) * np.float32(255)) + (a * np.float32(255) + np.float32(0.5))).astype(np.uint8)
