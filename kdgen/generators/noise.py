"""Noise images: gaussian, uniform, spectral 1/f^alpha, Perlin fBm, or a mix of them."""

from __future__ import annotations

import click
import numpy as np

from kdgen.registry import Generator, option, register

VARIANTS = ("gaussian", "uniform", "spectral", "perlin")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, got {text!r}") from None


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _stretch(field: np.ndarray) -> np.ndarray:
    """Map a field to [0, 1] by its own range (per channel), so every image uses the full range."""
    lo = field.min(axis=(0, 1), keepdims=True)
    hi = field.max(axis=(0, 1), keepdims=True)
    return (field - lo) / np.maximum(hi - lo, 1e-12)


def spectral_field(rng, h: int, w: int, alpha: float, channels: int) -> np.ndarray:
    """Noise whose power spectrum falls as 1/f^alpha (HxWxC, unnormalised)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-alpha / 2.0)  # amplitude is the square root of power
    amp[0, 0] = 0.0
    spec = (rng.standard_normal((channels, h, w // 2 + 1)) + 1j * rng.standard_normal((channels, h, w // 2 + 1)))
    return np.fft.irfftn(spec * amp, s=(h, w), axes=(1, 2)).transpose(1, 2, 0)


def _fade(t):
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin(rng, h: int, w: int, cells: float) -> np.ndarray:
    """Gradient (Perlin) noise on a grid of `cells` cells across the width, vectorised (HxW, about [-1, 1])."""
    gx, gy = int(np.ceil(cells)) + 1, int(np.ceil(cells * h / w)) + 1
    angles = rng.uniform(0, 2 * np.pi, (gy + 1, gx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = (np.arange(h) + 0.5) * (cells / w) + rng.uniform(0, 1)
    xs = (np.arange(w) + 0.5) * (cells / w) + rng.uniform(0, 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    ty, tx = (ys - y0)[:, None], (xs - x0)[None, :]
    y0, x0 = np.minimum(y0, gy - 1), np.minimum(x0, gx - 1)

    def corner(dy, dx):
        g = grads[(y0 + dy)[:, None], (x0 + dx)[None, :]]
        return g[..., 0] * (tx - dx) + g[..., 1] * (ty - dy)

    u, v = _fade(tx), _fade(ty)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (top * (1 - v) + bottom * v) * np.sqrt(2)


def fbm(rng, h: int, w: int, octaves: int, base_cells: float, gain: float = 0.5) -> np.ndarray:
    """Fractal Brownian motion: octaves of Perlin noise, each twice the frequency at `gain` times the amplitude."""
    total = np.zeros((h, w))
    amp = 1.0
    for o in range(octaves):
        total += amp * perlin(rng, h, w, base_cells * 2**o)
        amp *= gain
    return total


@register
class Noise(Generator):
    name = "noise"
    help = ("Noise images: gaussian (a dataset's mean/std), uniform, spectral 1/f^alpha, Perlin fBm, or mixed. "
            "The paper's weakest surrogate, and the one the boundary attack lifts most.")
    options = [
        option("--variant", type=click.Choice(VARIANTS + ("mixed",)), default="mixed", show_default=True,
               help="gaussian | uniform | spectral | perlin | mixed."),
        option("--channels", type=int, default=3, show_default=True, help="3 (RGB) or 1 (grey)."),
        option("--mean", default="0.5", show_default=True, help="Gaussian mean, one value or one per channel."),
        option("--std", default="0.25", show_default=True, help="Gaussian std, one value or one per channel."),
        option("--alpha", default="1.0,3.0", show_default=True, help="Spectral exponent range lo,hi (per image)."),
        option("--correlated/--independent", default=True, show_default=True,
               help="Spectral/Perlin colour: one field tinted by a random colour mix, or one field per channel."),
        option("--octaves", type=int, default=5, show_default=True, help="Perlin fBm octaves."),
    ]

    def __init__(self, size, variant="mixed", channels=3, mean="0.5", std="0.25", alpha="1.0,3.0",
                 correlated=True, octaves=5):
        super().__init__(size)
        if variant not in VARIANTS + ("mixed",):
            raise ValueError(f"unknown noise --variant {variant!r}; choose {', '.join(VARIANTS + ('mixed',))}")
        if channels not in (1, 3):
            raise ValueError(f"--channels must be 1 or 3, got {channels}")
        self.mean = self._per_channel(_floats(mean, "--mean"), channels, "--mean")
        self.std = self._per_channel(_floats(std, "--std"), channels, "--std")
        if min(self.std) < 0:
            raise ValueError(f"--std must not be negative, got {std}")
        a = _floats(alpha, "--alpha")
        self.alpha = (a[0], a[-1])
        if not 1 <= octaves <= 12:
            raise ValueError(f"--octaves must be in 1..12, got {octaves}")
        self.variant, self.channels, self.correlated, self.octaves = variant, channels, correlated, octaves
        self.params = dict(variant=variant, channels=channels, mean=self.mean, std=self.std, alpha=list(self.alpha),
                           correlated=correlated, octaves=octaves)

    @staticmethod
    def _per_channel(values, channels, what):
        if len(values) == 1:
            return values * channels
        if len(values) != channels:
            raise ValueError(f"{what} needs 1 or {channels} values, got {len(values)}")
        return values

    def _colourise(self, rng, field: np.ndarray) -> np.ndarray:
        """One scalar field -> C channels: a random colour ramp between two colours (correlated mode)."""
        if self.channels == 1:
            return field[..., None]
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        return a + field[..., None] * (b - a)

    def sample(self, rng):
        h, w, c = self.height, self.width, self.channels
        variant = self.variant if self.variant != "mixed" else VARIANTS[rng.integers(len(VARIANTS))]
        params = {"variant": variant}
        if variant == "gaussian":
            x = rng.standard_normal((h, w, c)) * np.array(self.std) + np.array(self.mean)
        elif variant == "uniform":
            x = rng.random((h, w, c))
        elif variant == "spectral":
            alpha = float(rng.uniform(*self.alpha))
            params["alpha"] = alpha
            if self.correlated:
                x = self._colourise(rng, _stretch(spectral_field(rng, h, w, alpha, 1))[..., 0])
            else:
                x = _stretch(spectral_field(rng, h, w, alpha, c))
        else:
            cells = float(rng.uniform(1.5, 6.0))
            params["cells"] = cells
            fields = 1 if self.correlated else c
            x = np.stack([_stretch(fbm(rng, h, w, self.octaves, cells)) for _ in range(fields)], axis=-1)
            if self.correlated:
                x = self._colourise(rng, x[..., 0])
        img = _to_uint8(x)
        return (img[..., 0] if c == 1 else img), params
