"""Augmentation recipes, each a small callable class applied to a whole uint8 batch (N,C,H,W), with
per-sample randomness drawn from a CPU torch.Generator (seeded per batch by the loader, which makes every
batch reproducible and the stream resumable).

The same code runs batched on the training device, in the training process, or in the loader workers
(`--augment-on`): random parameters are drawn on the CPU generator and moved to the batch's device (only
elastic's displacement fields are drawn on a GPU, from a seed of that generator), so on the CPU a batch
augments to the same images wherever it runs, and on any device the stream is a function of the seed.

Crop, flip, colour jitter, invert and elastic are vectorised over the batch: on a CPU box the loader
shares cores with training, and per-sample transform calls cost 10-50x more. RandAugment runs each op
once per group of samples that drew it (torchvision's v2 ops).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from kdtrain.errors import UserError

_LUMA = (0.299, 0.587, 0.114)


def _on(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A parameter drawn on the CPU generator, moved to the batch's device (no-op on the CPU)."""
    return t.to(x.device, non_blocking=True)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and crop back to the original size at a random offset per sample."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = _on(torch.randint(0, 2 * pad + 1, (n, 1), generator=gen), x)
    ox = _on(torch.randint(0, 2 * pad + 1, (n, 1), generator=gen), x)
    rows = (oy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    xp = xp.gather(2, rows)
    cols = (ox + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return xp.gather(3, cols)


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    mask = _on(torch.rand(x.shape[0], generator=gen) < p, x)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_invert(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    mask = _on(torch.rand(x.shape[0], generator=gen) < p, x)
    return torch.where(mask.view(-1, 1, 1, 1), 255 - x, x)


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and (RGB only) saturation, each by a factor in [1-s, 1+s] per sample."""
    if strength <= 0:
        return x
    n = x.shape[0]

    def factor():
        return _on((1 + strength * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)).clamp_min(0), x)

    luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
    y = x.float() * factor()
    grey = (y * luma).sum(1, keepdim=True) if y.shape[1] == 3 else y
    y = (y - grey.mean((1, 2, 3), keepdim=True)) * factor() + grey.mean((1, 2, 3), keepdim=True)
    if y.shape[1] == 3:
        grey = (y * luma).sum(1, keepdim=True)
        y = (y - grey) * factor() + grey
    return y.clamp_(0, 255).round_().to(torch.uint8)


def elastic(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, alpha: float = 50.0, sigma: float = 5.0):
    """torchvision's ElasticTransform (same alpha/sigma meaning) on a random subset, batched."""
    n, _, h, w = x.shape
    mask = torch.rand(n, generator=gen) < p
    if not mask.any():
        return x
    if x.device.type == "cpu":
        d = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
    else:  # a field per image is too much to draw on the host and copy at GPU rates: drawn there, seeded from gen
        dev_gen = torch.Generator(x.device).manual_seed(int(torch.randint(1 << 62, (1,), generator=gen)))
        d = torch.rand(n, 2, h, w, generator=dev_gen, device=x.device) * 2 - 1
    bh, bw = _blur_matrix(h, sigma, x.device), _blur_matrix(w, sigma, x.device)
    d = (bh @ d @ bw.T) * (alpha / torch.tensor([w, h], device=x.device)).view(1, 2, 1, 1)
    ident = torch.stack(torch.meshgrid(torch.linspace(-1, 1, h, device=x.device),
                                       torch.linspace(-1, 1, w, device=x.device), indexing="ij")[::-1], -1)
    grid = ident.unsqueeze(0) + d.permute(0, 2, 3, 1)
    y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.where(_on(mask, x).view(-1, 1, 1, 1), y.round().clamp(0, 255).to(torch.uint8), x)


@functools.cache
def _blur_matrix(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """The 1-D Gaussian blur of torchvision's ElasticTransform (kernel 8*sigma+1, replicate padding) along
    an axis of `size` pixels as a size x size matrix: two small matmuls blur a whole batch of displacement
    fields, 25x faster on the CPU than the separable convolution over the padded fields."""
    r = int(4 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = k / k.sum()
    src = (torch.arange(size).view(-1, 1) + torch.arange(-r, r + 1).view(1, -1)).clamp(0, size - 1)
    m = torch.zeros(size, size, dtype=torch.float64)
    m.scatter_add_(1, src, k.expand(size, -1).clone())  # replicate padding: taps past an edge land on it
    return m.float().to(device)


class BatchRandAugment:
    """torchvision's v2.RandAugment(n, m), applied to a batch. The geometric ops (shears, translations,
    rotation: nearest-neighbour resampling at a fixed magnitude) and the identity are each a fixed map from
    output to source pixel, found once per image size by running torchvision's own op on an image of pixel
    numbers; all the samples that drew one of them move in one gather per round, on any device. The other
    ops run once per group of samples that drew the same (op, sign). The output is torchvision's, pixel for
    pixel. It uses torchvision's private internals; if they move it fails at once rather than switch to
    another random stream, which would silently break exact resume (tests/test_presets.py pins it)."""

    INTERNALS = ("_AUGMENTATION_SPACE", "_apply_image_or_video_transform", "_fill", "interpolation",
                 "num_magnitude_bins", "magnitude", "num_ops")
    MAPPED = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")

    def __init__(self, n: int, m: int):
        import torchvision  # here, not at the top: importing it costs every kdtrain command 2-9 s on 2 cores
        from torchvision.transforms import v2

        self.ra = v2.RandAugment(n, m)
        missing = [a for a in self.INTERNALS if not hasattr(self.ra, a)]
        if missing:
            from kdtrain.errors import UserError

            raise UserError(f"torchvision {torchvision.__version__} moved RandAugment's internals "
                          f"({', '.join(missing)}) that the batched RandAugment needs; install torchvision==0.29.1 "
                          f"(the tested version) or use another --preset")
        self.ops = list(self.ra._AUGMENTATION_SPACE.items())
        # per (op, sign) key: whether a pixel map does it (op 2k and 2k+1 share the op's name)
        self.mapped = torch.tensor([name in self.MAPPED for name, _ in self.ops for _ in range(2)])
        self._mags: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self._maps: dict[tuple, torch.Tensor] = {}

    def magnitudes(self, h: int, w: int) -> list[tuple[float, float]]:
        """(magnitude, negated magnitude) of every op at this image size (torchvision's bins at self.magnitude)."""
        if (h, w) in self._mags:
            return self._mags[h, w]
        out = self._mags[h, w] = []
        for _, (mags, signed) in self.ops:
            m = mags(self.ra.num_magnitude_bins, h, w)
            m = 0.0 if m is None else float(m[self.ra.magnitude])
            out.append((m, -m if signed else m))
        return out

    def pixel_maps(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(keys, h*w) long: for each mapped key, 1 + the flat index of the source pixel of every output pixel,
        0 where the op samples outside the image (zero fill: RandAugment's default); unmapped keys: identity.
        A float image holding the numbers 1..h*w goes through torchvision's op: nearest-neighbour sampling
        copies the numbers exactly, so the map is the op itself."""
        if (h, w, device) not in self._maps:
            mags = self.magnitudes(h, w)
            probe = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)
            maps = []
            for k in range(2 * len(self.ops)):
                name = self.ops[k // 2][0]
                m = probe if name == "Identity" or name not in self.MAPPED else self.ra._apply_image_or_video_transform(
                    probe, name, mags[k // 2][k % 2], interpolation=self.ra.interpolation, fill=self.ra._fill)
                maps.append(m.reshape(-1).round().long())
            self._maps[h, w, device] = torch.stack(maps).to(device)
        return self._maps[h, w, device]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        mags = self.magnitudes(h, w)
        maps = self.pixel_maps(h, w, x.device)
        n_keys, mapped = 2 * len(self.ops), self.mapped.tolist()
        for _ in range(self.ra.num_ops):
            op = torch.randint(0, len(self.ops), (n,), generator=gen)
            neg = torch.rand(n, generator=gen) <= 0.5
            key = op * 2 + neg
            out = torch.empty_like(x)
            # the mapped samples: one gather from the images with a zero pixel in front (index 0: outside)
            rows = self.mapped[key].nonzero().squeeze(1)  # on the CPU draws: no device sync
            if len(rows):
                src = maps[_on(key[rows], x)]
                flat = F.pad(x[_on(rows, x)].flatten(2), (1, 0))
                out[_on(rows, x)] = flat.gather(2, src.unsqueeze(1).expand(-1, c, -1)).view(len(rows), c, h, w)
            # the others: one torchvision call per (op, sign) group, found by one stable sort of the CPU draws
            order = key.argsort(stable=True)
            sizes = torch.bincount(key, minlength=n_keys).tolist()
            start = 0
            for k, size in enumerate(sizes):
                if size and not mapped[k]:
                    idx = _on(order[start:start + size], x)
                    out[idx] = self.ra._apply_image_or_video_transform(
                        x[idx], self.ops[k // 2][0], mags[k // 2][k % 2], interpolation=self.ra.interpolation,
                        fill=self.ra._fill)
                start += size
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
