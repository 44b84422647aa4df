"""Augmentation recipes, each a small callable class applied to a whole uint8 batch (N,C,H,W) in the
loader workers, with per-sample randomness drawn from a torch.Generator (seeded per batch by the loader,
which makes every batch reproducible and the stream resumable).

Crop, flip, colour jitter, invert and elastic are vectorised over the batch: on a CPU box the loader
shares cores with training, and per-sample transform calls cost 10-50x more. RandAugment stays
per-sample (torchvision's v2 implementation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from kdtrain.errors import UserError

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and crop back to the original size at a random offset per sample."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    rows = (oy + torch.arange(h)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    xp = xp.gather(2, rows)
    cols = (ox + torch.arange(w)).view(n, 1, 1, w).expand(n, c, h, w)
    return xp.gather(3, cols)


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen) < p
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_invert(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen) < p
    return torch.where(mask.view(-1, 1, 1, 1), 255 - x, x)


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and (RGB only) saturation, each by a factor in [1-s, 1+s] per sample."""
    if strength <= 0:
        return x
    n = x.shape[0]

    def factor():
        return (1 + strength * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)).clamp_min(0)

    y = x.float() * factor()
    grey = (y * _LUMA).sum(1, keepdim=True) if y.shape[1] == 3 else y
    y = (y - grey.mean((1, 2, 3), keepdim=True)) * factor() + grey.mean((1, 2, 3), keepdim=True)
    if y.shape[1] == 3:
        grey = (y * _LUMA).sum(1, keepdim=True)
        y = (y - grey) * factor() + grey
    return y.clamp_(0, 255).round_().to(torch.uint8)


def elastic(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, alpha: float = 50.0, sigma: float = 5.0):
    """torchvision's ElasticTransform (same alpha/sigma meaning) on a random subset, batched."""
    n, _, h, w = x.shape
    mask = torch.rand(n, generator=gen) < p
    if not mask.any():
        return x
    d = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
    d = _blur(d, sigma) * (alpha / torch.tensor([w, h]).view(1, 2, 1, 1))
    ident = torch.stack(torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")[::-1], -1)
    grid = ident.unsqueeze(0) + d.permute(0, 2, 3, 1)
    y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.where(mask.view(-1, 1, 1, 1), y.round().clamp(0, 255).to(torch.uint8), x)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (kernel 8*sigma+1 as torchvision's), 20x faster than a 2-D kernel."""
    r = int(4 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(-1, 1, 1, 2 * r + 1), groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(-1, 1, 2 * r + 1, 1), groups=x.shape[1])


class BatchRandAugment:
    """torchvision's v2.RandAugment(n, m), applied to a batch by grouping the samples that drew the same
    (op, sign): every op then runs once per group instead of once per image (about 10x faster at
    N=128). It uses torchvision's private internals; if they move it fails at once rather than switch
    to another random stream, which would silently break exact resume (tests/test_presets.py pins it)."""

    INTERNALS = ("_AUGMENTATION_SPACE", "_apply_image_or_video_transform", "_fill", "interpolation",
                 "num_magnitude_bins", "magnitude", "num_ops")

    def __init__(self, n: int, m: int):
        import torchvision

        self.ra = v2.RandAugment(n, m)
        missing = [a for a in self.INTERNALS if not hasattr(self.ra, a)]
        if missing:
            from kdtrain.errors import UserError

            raise UserError(f"torchvision {torchvision.__version__} moved RandAugment's internals "
                          f"({', '.join(missing)}) that the batched RandAugment needs; install torchvision==0.29.1 "
                          f"(the tested version) or use another --preset")
        self.ops = list(self.ra._AUGMENTATION_SPACE.items())

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        for _ in range(self.ra.num_ops):
            op = torch.randint(0, len(self.ops), (x.shape[0],), generator=gen)
            neg = torch.rand(x.shape[0], generator=gen) <= 0.5
            out = x.clone()
            for key in torch.unique(op * 2 + neg).tolist():
                idx = ((op * 2 + neg) == key).nonzero().flatten()
                name, (mags, signed) = self.ops[key // 2]
                mags = mags(self.ra.num_magnitude_bins, h, w)
                mag = 0.0 if mags is None else float(mags[self.ra.magnitude])
                mag = -mag if (signed and key % 2) else mag
                out[idx] = self.ra._apply_image_or_video_transform(
                    x[idx], name, mag, interpolation=self.ra.interpolation, fill=self.ra._fill)
            x = out
        return x


class NoAug:
    """Images as they are (already adapted to the teacher's spec)."""

    mixup = False

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return x


def crop_pad(size: int) -> int:
    """Pad-and-crop's padding: size // 8 (4 px at 32 as in the CIFAR recipe, 3 at 28), at least 1."""
    return max(1, size // 8)


class CropFlip:
    """Pad-and-crop (crop_pad) and horizontal flip."""

    mixup = False

    def __init__(self, size: int):
        self.pad = crop_pad(size)

    def __call__(self, x, gen):
        return random_flip(random_crop(x, self.pad, gen), gen)


class Paper:
    """The paper's surrogate-data recipe: pad-and-crop, flip, RandAugment(n, m), colour jitter; for shader
    images also elastic (p=0.5) and invert (p=0.1). The paper also mixes every batch (`--mixup`, done by
    the trainer). `off` names pieces to leave out (`--aug-off`, for ablations)."""

    mixup = True  # the paper's recipe: used only where a config leaves mixup None (made before --mixup was off)
    PIECES = ("crop", "flip", "randaugment", "jitter", "elastic", "invert")

    def __init__(self, size: int, ra_n: int, ra_m: int, jitter: float, shader: bool = False,
                 off: tuple[str, ...] = ()):  # build_preset supplies each preset's defaults (PAPER_DEFAULTS)
        have = self.PIECES if shader else self.PIECES[:4]
        bad = [p for p in off if p not in have]
        if bad:
            raise UserError(f"--aug-off {','.join(bad)}: not a piece of this preset; its pieces are {', '.join(have)}"
                          + ("" if shader else " (elastic and invert are in --preset paper-shader)"))
        self.pad = 0 if "crop" in off else crop_pad(size)
        self.flip_p = 0.0 if "flip" in off else 0.5
        self.randaugment = BatchRandAugment(ra_n, ra_m) if ra_n > 0 and "randaugment" not in off else None
        self.jitter = 0.0 if "jitter" in off else jitter
        self.shader = shader
        self.elastic_p = 0.0 if "elastic" in off else 0.5
        self.invert_p = 0.0 if "invert" in off else 0.1

    def __call__(self, x, gen):
        x = random_flip(random_crop(x, self.pad, gen), gen, self.flip_p)
        if self.randaugment is not None:
            x = self.randaugment(x, gen)
        x = color_jitter(x, self.jitter, gen)
        if self.shader:
            x = random_invert(elastic(x, gen, self.elastic_p), gen, self.invert_p)
        return x


def match_stats(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Give each image (float, [0,1]) the per-channel mean and std of the teacher's training inputs,
    clipped to [0, 1]: dark backgrounds with sparse bright shapes where the teacher's data has them."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    m = x.mean(dim=(2, 3), keepdim=True)
    s = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return ((x - m) / s * std + mean).clamp_(0, 1)


class MatchStats:
    """`match_stats` on the loaded uint8 images, then the inner preset: the augmentation then works on
    images that already look like the teacher's inputs (measured better than matching after it)."""

    def __init__(self, inner, mean, std):
        self.inner, self.mean, self.std = inner, tuple(mean), tuple(std)
        self.mixup = inner.mixup

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        y = match_stats(x.float().div_(255), self.mean, self.std)
        return self.inner(y.mul_(255).round_().to(torch.uint8), gen)


PRESETS = ("none", "crop-flip", "paper", "paper-shader")


# (RandAugment ops, colour jitter) of each paper preset when not given: the authors' shader config has
# RandAugment with 4 ops and no jitter; `paper` keeps the lighter 2 ops plus jitter.
PAPER_DEFAULTS = {"paper": (2, 0.4), "paper-shader": (4, 0.0)}


def build_preset(name: str, size: int, ra_n: int | None = None, ra_m: int = 14, jitter: float | None = None,
                 off: str = ""):
    """A preset by name for square-ish images of side `size` (the teacher's input); `off`: comma-separated
    pieces of a paper preset to leave out; ra_n and jitter None: the preset's own (PAPER_DEFAULTS)."""
    pieces = tuple(p.strip() for p in off.split(",") if p.strip())
    if pieces and name not in ("paper", "paper-shader"):
        raise UserError(f"--aug-off works with --preset paper or paper-shader, not {name!r}")
    if name == "none":
        return NoAug()
    if name == "crop-flip":
        return CropFlip(size)
    if name in ("paper", "paper-shader"):
        n, j = PAPER_DEFAULTS[name]
        return Paper(size, n if ra_n is None else ra_n, ra_m, j if jitter is None else jitter,
                     shader=name == "paper-shader", off=pieces)
    raise UserError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}")


def mixup(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Per-sample mixup: x_i <- lam_i x_i + (1 - lam_i) x_perm(i). The teacher labels the result."""
    lam = lam.to(x.device, x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return lam * x + (1 - lam) * x[perm.to(x.device)]
