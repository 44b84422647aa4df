"""The batched RandAugment draws one pinned stream per seed, and fails loudly if torchvision moves."""

from __future__ import annotations

import hashlib

import pytest
import torch

from kdtrain.data.augment import BatchRandAugment
from kdtrain.errors import UserError

# sha256 of BatchRandAugment(2, 14) on a fixed uint8 batch with torch.Generator seed 0 (torchvision 0.29.1).
# If it changes, exact resume of runs made before the change breaks: say so in the commit.
PINNED = "2906bb3eb206d8ef4f0bf6f5c184f47ec128fa1f6176e6750b28ecb9a189760e"


def test_the_augmentation_stream_is_pinned_for_a_seed():
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = BatchRandAugment(2, 14)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest() == PINNED


def test_moved_torchvision_internals_fail_loudly(monkeypatch):
    from torchvision.transforms import v2

    monkeypatch.delattr(v2.RandAugment, "_AUGMENTATION_SPACE")
    with pytest.raises(UserError, match="_AUGMENTATION_SPACE.*torchvision==0.29.1"):
        BatchRandAugment(2, 14)


def test_aug_off_leaves_out_the_named_pieces():
    from kdtrain.data.augment import Paper, build_preset

    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    every = build_preset("paper-shader", 28, 4, 14, 0.4, off=",".join(Paper.PIECES))
    assert torch.equal(every(x, torch.Generator().manual_seed(0)), x)  # all off: the identity
    no_invert = build_preset("paper-shader", 28, 0, 14, 0.0, off="crop,flip,elastic")
    out = no_invert(x, torch.Generator().manual_seed(0))
    flipped = (out == 255 - x).flatten(1).all(1)  # only the invert piece is left: each image whole or inverted
    assert bool(((out == x).flatten(1).all(1) | flipped).all()) and bool(flipped.any())
    full = build_preset("paper-shader", 28, 4, 14, 0.4)(x, torch.Generator().manual_seed(0))
    assert not torch.equal(full, x)


@pytest.mark.parametrize("preset, off, match", [
    ("paper", "elastic", "elastic: not a piece of this preset.*paper-shader"),
    ("paper-shader", "crop,zoom", "zoom: not a piece"),
    ("crop-flip", "flip", "works with --preset paper"),
])
def test_aug_off_refuses_pieces_the_preset_lacks(preset, off, match):
    from kdtrain.data.augment import build_preset

    with pytest.raises(UserError, match=match):
        build_preset(preset, 28, off=off)


def test_the_default_recipe_is_the_papers_shader_recipe_without_mixup(tmp_path):
    """The measured best (docs/RESULTS.md): paper-shader with the authors' 4 RandAugment ops and no colour
    jitter, no mixup; `paper` keeps 2 ops plus jitter; an explicit value still wins."""
    from kdtrain.data.augment import Paper, build_preset
    from kdtrain.data.spec import InputSpec
    from kdtrain.train.config import DistillConfig
    from kdtrain.train.distill import build_augmentation

    spec = InputSpec(1, 28, 28, (0.5,), (0.5,))
    preset, mix = build_augmentation(DistillConfig(out=str(tmp_path / "r")), spec)
    assert isinstance(preset, Paper) and preset.shader and not mix
    assert (preset.randaugment.ra.num_ops, preset.jitter) == (4, 0.0)
    paper = build_preset("paper", 28)
    assert (paper.randaugment.ra.num_ops, paper.jitter, paper.shader) == (2, 0.4, False)
    assert build_preset("paper-shader", 28, ra_n=1, jitter=0.2).jitter == 0.2
    assert build_augmentation(DistillConfig(out=str(tmp_path / "r"), mixup=True), spec)[1]


def _elastic_before(x, gen, p=0.5, alpha=50.0, sigma=5.0):
    """The elastic transform as it was before its blur became two matrix products: the separable Gaussian
    convolution over replicate-padded displacement fields (the reference for the statistics below)."""
    import torch.nn.functional as F

    n, _, h, w = x.shape
    mask = torch.rand(n, generator=gen) < p
    d = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
    r = int(4 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=d.dtype) / sigma) ** 2)
    k = (k / k.sum()).repeat(2, 1, 1, 1)
    d = F.conv2d(F.pad(d, (r, r, 0, 0), mode="replicate"), k.view(-1, 1, 1, 2 * r + 1), groups=2)
    d = F.conv2d(F.pad(d, (0, 0, r, r), mode="replicate"), k.view(-1, 1, 2 * r + 1, 1), groups=2)
    d = d * (alpha / torch.tensor([w, h]).view(1, 2, 1, 1))
    ident = torch.stack(torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")[::-1], -1)
    y = F.grid_sample(x.float(), ident.unsqueeze(0) + d.permute(0, 2, 3, 1), mode="bilinear",
                      padding_mode="zeros", align_corners=True)
    return torch.where(mask.view(-1, 1, 1, 1), y.round().clamp(0, 255).to(torch.uint8), x)


@pytest.mark.parametrize("shape", [(64, 1, 28, 28), (32, 3, 32, 24)])
def test_elastic_keeps_the_statistics_of_the_convolution_blur(shape):
    from kdtrain.data.augment import elastic

    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    new = elastic(x, torch.Generator().manual_seed(9))
    old = _elastic_before(x, torch.Generator().manual_seed(9))
    assert (new != old).float().mean() < 1e-3  # only float rounding at .5 boundaries differs
    assert (new.int() - old.int()).abs().max() <= 1
    moved = (new != x).flatten(1).any(1)
    assert 0.2 < moved.float().mean() < 0.8  # p = 0.5 of the images, the others untouched
    for stat in (lambda t: t.float().mean((1, 2, 3)), lambda t: t.float().std((1, 2, 3))):
        assert torch.allclose(stat(new), stat(old), atol=0.05)

