"""Teacher-guided refinement: pull surrogate images toward what the teacher remembers of its data.

A teacher with BatchNorm layers keeps the running mean and variance of its training data's features
at every BN input. Starting from a surrogate image (already diverse), a few optimisation steps on its
pixels minimise
    ce_weight  x CE(teacher(x), target)                        (a class chosen as the attack chooses)
  + bn_weight  x sum over BN layers of ||mu_batch - running_mean||_2 + ||var_batch - running_var||_2
                 (stats=kl: of the mean over channels of KL(N(mu_batch, var_batch) || N(running)))
  + tv_weight  x mean |x - shifted x|                          (total variation: smooth images)
  + l2_weight  x mean x^2
with the teacher frozen (eval mode: its buffers never move). The statistics term is DeepInversion's
(Yin et al. 2020), which starts from noise and needs thousands of steps; from surrogate images a few
dozen suffice. Used offline by `kdtrain refine` (shards with metadata) and online as a distillation
batch hook (`--refine`), alone or before the boundary attack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdgen.settings import knob
from kdtrain.errors import UserError
from kdtrain.synth import common
from kdtrain.synth.common import TARGET_MODES, choose_targets, frozen

# The offline refinement's version, part of its sets' identity: bump it whenever the same inputs and seed
# would write other images or labels. 1: the teacher's prediction of the stored image is the .cls.
# 2: the statistics term from plain sums of x and x^2 (other float rounding, so other bytes).
VERSION = 2
OPTIMIZERS = ("adam", "sign")
SCHEDULES = ("constant", "cosine")
STATS = ("raw", "kl")  # the statistics distance (stats_distance)
VAR_FLOOR = 1e-5  # BatchNorm's own eps: a batch variance under it counts as it


@dataclass(frozen=True)
class RefineConfig:
    steps: int = knob(200, "most optimisation steps per batch (exactly this many with plateau 0)")
    # Stopping rule: the statistics term is the one signal a user has (no real data), so a batch
    # stops once that term has stopped falling: its best value over the last `window` steps improved
    # on the best before them by less than `plateau` (a fraction). Chosen a priori, not tuned.
    plateau: float = knob(0.01, "stop a batch once its BN statistics loss fell by less than this fraction over "
                                "the last `window` steps (0: always run `steps`)")
    window: int = knob(10, "steps the plateau test looks back over")
    lr: float = knob(0.1, "Adam learning rate (or sign-step size) on pixels in [0, 1]")
    optimizer: str = knob("adam", "adam, or sign steps of size lr", choices=OPTIMIZERS)
    schedule: str = knob("constant", "the step size over a batch's steps: constant lr, or cosine from lr down to 0 "
                                     "at `steps`", choices=SCHEDULES)
    ce_weight: float = knob(1.0, "weight of the cross-entropy toward each image's target class")
    bn_weight: float = knob(1.0, "weight of the distance of the batch's BN-input statistics to the running ones")
    tv_weight: float = knob(0.05, "weight of the L1 total variation")
    l2_weight: float = knob(0.0, "weight of the mean squared pixel value")
    target: str = knob("uniform", "target class choice, as the attack's; fair gives every class an equal "
                                  "share, a source's own class included", choices=TARGET_MODES)
    stats: str = knob("raw", "distance of the batch's BN-input statistics to the running ones: raw (L2 norms of "
                             "the mean and variance differences, summed over layers) or kl (per channel Gaussian "
                             "KL divergence, each channel by its own running spread)", choices=STATS)

    def validate(self) -> RefineConfig:
        if self.steps < 1:
            raise UserError(f"refine steps must be at least 1, got {self.steps}")
        if self.window < 1:
            raise UserError(f"refine window must be at least 1, got {self.window}")
        if not 0 <= self.plateau < 1:
            raise UserError(f"refine plateau must be a fraction in [0, 1), got {self.plateau}")
        if not self.lr > 0:
            raise UserError(f"refine lr must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"refine optimizer {self.optimizer!r}: use adam or sign")
        if self.schedule not in SCHEDULES:
            raise UserError(f"refine schedule {self.schedule!r}: use constant or cosine")
        if self.stats not in STATS:
            raise UserError(f"refine stats {self.stats!r}: use one of {', '.join(STATS)}")
        if self.target not in TARGET_MODES:
            raise UserError(f"refine target {self.target!r}: use one of {', '.join(TARGET_MODES)}")
        for f in ("ce_weight", "bn_weight", "tv_weight", "l2_weight"):
            v = getattr(self, f)
            if not (v >= 0 and np.isfinite(v)):
                raise UserError(f"refine {f.replace('_', '-')} must be a finite number >= 0, got {v}")
        return self


@dataclass
class RefineResult:
    images: torch.Tensor  # N,C,H,W in [0, 1]
    target: torch.Tensor  # N, the class each image was pulled toward
    pred: torch.Tensor  # N, the teacher's prediction of the refined image
    confidence: torch.Tensor  # N, its max-softmax
    bn_loss: float  # final statistics term of the batch (before weighting)
    bn_loss_start: float  # the same for the source images
    steps: int = 0  # optimisation steps run (fewer than cfg.steps when the plateau rule stopped the batch)


def batchnorm_layers(teacher) -> list[nn.Module]:
    """Where the teacher's BatchNorm inputs can be seen, whatever its format (Teacher.internals): modules
    whose forward hooks see each BN layer's input, each with its `running_mean` and `running_var`; or a
    one-line error saying why there are none and what can be done instead."""
    inside = teacher.internals()
    if not inside.bn_layers:
        raise UserError(f"refinement matches the teacher's BatchNorm statistics, but {inside.no_bn}; nothing "
                      "BN-based can be done with this teacher: use `kdtrain attack` or the unrefined sets instead")
    return inside.bn_layers


def stats_distance(mean: torch.Tensor, var: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                   stats: str = "raw") -> torch.Tensor:
    """One BN layer's term: the distance of batch statistics (..., C) to the running ones (C), over the last dim.

    raw: ||mean - running_mean||_2 + ||var - running_var||_2, DeepInversion's; its layers weigh by their scale,
    so a layer with large running variances (small late feature maps of a wide net) can swamp the rest.
    kl: the mean over channels of KL(N(mean, var) || N(running_mean, running_var)): each channel measured in
    its own running spread, so every layer weighs alike whatever its width and scale.
    """
    if stats == "raw":
        return (torch.linalg.vector_norm(mean - running_mean, dim=-1)
                + torch.linalg.vector_norm(var - running_var, dim=-1))
    rv, v = running_var.clamp(min=VAR_FLOOR), var.clamp(min=VAR_FLOOR)
    return (0.5 * (torch.log(rv / v) + (v + (mean - running_mean) ** 2) / rv - 1)).mean(dim=-1)


class StatsProbe:
    """Forward hooks on the BN layers: after a forward, `loss()` is the summed distance (stats_distance)
    between the batch's per-channel input mean/variance and the layers' running ones."""

    def __init__(self, layers, stats: str = "raw"):
        self.layers, self.terms, self.handles, self.stats = layers, [], [], stats

    def __enter__(self) -> StatsProbe:
        for layer in self.layers:
            self.handles.append(layer.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _hook(self, layer, inputs, _output) -> None:
        # The first two moments as plain sums over (N, H, W), in whatever memory format the input has: no
        # permuted copy and no two-pass variance (6x cheaper forward and backward than `var` of a permuted
        # copy on a CPU; BN inputs have means of the order of their spread, so E[x^2] - mean^2 loses nothing).
        x = inputs[0].float()
        n = x.numel() // x.shape[1]
        mean = x.sum(dim=(0, 2, 3)) / n
        var = (x * x).sum(dim=(0, 2, 3)) / n - mean * mean
        self.terms.append(stats_distance(mean, var, layer.running_mean.float(), layer.running_var.float(), self.stats))

    def take(self) -> torch.Tensor:
        total = torch.stack(self.terms).sum() if self.terms else torch.zeros(())
        self.terms = []
        return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def plateaued(best: list[float], cfg: RefineConfig) -> bool:
    """The plateau rule on the best-so-far losses: under `plateau` relative fall over the last `window`."""
    return bool(cfg.plateau) and len(best) > cfg.window and best[-1] > (1 - cfg.plateau) * best[-1 - cfg.window]


def refine_batch(teacher, x: torch.Tensor, cfg: RefineConfig, generator: torch.Generator,
                 counts: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> RefineResult:
    """Refine a batch of images (N,C,H,W in [0, 1], at the teacher's spec); the teacher is left untouched."""
    cfg.validate()
    layers = batchnorm_layers(teacher)
    dev = teacher.device
    src = x.detach().to(dev, torch.float32)
    with frozen(teacher), StatsProbe(layers, cfg.stats) as probe:
        with torch.no_grad():
            logits = teacher(src).float()
            bn_start = float(probe.take())
        if targets is None:
            targets = choose_targets(logits.softmax(1), cfg.target, generator, counts, allow_top=True)
        targets = targets.to(dev)
        img = src.clone().requires_grad_(True)
        opt = torch.optim.Adam([img], lr=cfg.lr) if cfg.optimizer == "adam" else None
        best, taken = [], 0  # best statistics loss so far, per evaluation (for the plateau rule); steps taken
        with torch.enable_grad():
            for i in range(cfg.steps):
                lr = cfg.lr if cfg.schedule == "constant" else cfg.lr * 0.5 * (1 + math.cos(math.pi * i / cfg.steps))
                logits = teacher(img).float()
                bn = probe.take()
                best.append(min(float(bn.detach()), best[-1]) if best else float(bn.detach()))
                if plateaued(best, cfg):
                    break  # keep the image just evaluated
                loss = cfg.ce_weight * F.cross_entropy(logits, targets) + cfg.bn_weight * bn
                if cfg.tv_weight:
                    loss = loss + cfg.tv_weight * total_variation(img)
                if cfg.l2_weight:
                    loss = loss + cfg.l2_weight * img.pow(2).mean()
                (grad,) = torch.autograd.grad(loss, img)
                if opt is None:
                    with torch.no_grad():
                        img -= lr * grad.sign()
                else:
                    if cfg.schedule != "constant":
                        opt.param_groups[0]["lr"] = lr
                    img.grad = grad
                    opt.step()
                with torch.no_grad():
                    img.clamp_(0, 1)
                taken += 1
        out = img.detach()
        with torch.no_grad():
            probs = teacher(out).float().softmax(1)
            bn_end = float(probe.take())
    conf, pred = probs.max(1)
    return RefineResult(out, targets, pred, conf, bn_end, bn_start, steps=taken)


PROBE_REACHED = 0.5  # raw refinement must bring at least this share of a probe batch to its targets


def probe_stats(teacher, x: torch.Tensor, generator: torch.Generator) -> tuple[str, float]:
    """The statistics distance for this teacher, from surrogate images alone: refine one batch with the raw
    distance (the default settings otherwise) and keep it when at least PROBE_REACHED of the batch reaches its
    target class, else take kl. Raw weighs each BN layer by its own scale; on a teacher where a few layers'
    large running variances swamp the class term (a wide net on small images), raw refinement leaves most
    images short of their targets, and kl, which measures each channel in its own spread, keeps both terms
    in play (docs/RESULTS.md, "The statistics distance"). Returns (distance, share of targets reached)."""
    res = refine_batch(teacher, x, RefineConfig(stats="raw"), generator)
    reached = float((res.pred == res.target).float().mean())
    return ("raw" if reached >= PROBE_REACHED else "kl"), reached


class OnlineRefine(common.OnlineHook):
    """Distillation batch hook: refine part of every `every`-th batch before the teacher labels it.

    `fraction` of the rows (random, from (seed, step, rank)) are refined together, so the statistics
    term sees a batch. Refined rows lose their data label (-1) and their mixup partner (lambda 1),
    as attacked rows do. Returns the same kind of batch it was given (tensor or the trainer's dict).
    """

    name, salt = "refine", 0x4EF

    def __init__(self, teacher, cfg: RefineConfig | None = None, fraction: float = 1.0, every: int = 1,
                 seed: int = 0, rank: int = 0):
        super().__init__(teacher, fraction, every, seed, rank)
        self.cfg = (cfg or RefineConfig()).validate()
        batchnorm_layers(teacher)  # refuse an unusable teacher before training starts

    def apply(self, batch, images: torch.Tensor, gen: torch.Generator):
        n = len(images)
        rows = torch.randperm(n, generator=gen)[: max(1, round(self.fraction * n))].to(images.device)
        least = self.cfg.target == "least-predicted"
        # fair targets are balanced within the batch (no running counts), so a resumed run refines exactly
        res = refine_batch(self.teacher, images[rows], self.cfg, gen, self.counts if least else None)
        if least:
            self.counts += torch.bincount(res.pred.cpu(), minlength=len(self.counts))
        return common.replace_rows(batch, rows, res.images)


def parse_options(text: str) -> tuple[dict, RefineConfig]:
    """`on` or `key=value,...` (RefineConfig fields and fraction/every; - or _ alike) -> (online, config)."""
    return common.parse_online(text, RefineConfig, OnlineRefine.name)


def make_refine_hook(config, teacher):
    """OnlineRefine from the trainer's config (`refine` field), or None when it is off."""
    return common.hook_from_config(config, "refine", teacher, RefineConfig, OnlineRefine)


def run_offline(teacher, batches, writer, cfg: RefineConfig, seed: int = 0, limit: int | None = None,
                match_stats: bool = True, progress=None) -> dict:
    """Refine every source image of `batches` and write it with its metadata; returns the run's counts.

    With match_stats the sources first take the teacher's input mean/std (as `--match-stats` does).
    Metadata (under "params"): source key and shard, target, steps (its batch's, as the plateau rule
    stopped it), the teacher's prediction and confidence on the stored 8-bit image, and the batch's
    statistics loss after. The returned counts hold the targets' and the predictions' classes.
    """
    cfg.validate()
    own = {"reached_target": 0, "bn_loss_start": 0.0, "bn_loss_end": 0.0, "confidence": 0.0, "steps": 0.0,
           "steps_max": 0}
    aimed = torch.zeros(int(teacher.num_classes), dtype=torch.long)  # targets so far (fair balances these)

    def step(x, gen, counts):
        if match_stats:
            x = common.as_teacher_sees(x, teacher.spec)
        res = refine_batch(teacher, x, cfg, gen, (counts if cfg.target == "least-predicted" else aimed).clone())
        aimed.add_(torch.bincount(res.target.cpu(), minlength=len(aimed)))
        own["bn_loss_start"] += res.bn_loss_start * len(x)
        own["bn_loss_end"] += res.bn_loss * len(x)
        own["steps"] += res.steps * len(x)
        own["steps_max"] = max(own["steps_max"], res.steps)

        def tally(pred, conf):
            own["reached_target"] += int((pred == res.target).sum())
            own["confidence"] += float(conf.sum())

        params = [{"target": int(t), "steps": res.steps, "bn_loss": round(res.bn_loss, 6)} for t in res.target]
        return res.images, torch.arange(len(x)), params, tally

    stats = common.run_offline_step(teacher, batches, writer, step, seed, limit, "refine", labelled=True,
                             progress=progress)
    n = max(1, stats["sources"])
    for key in ("bn_loss_start", "bn_loss_end", "confidence", "steps"):
        own[key] = round(own[key] / n, 4)
    return {**stats, **own, "target_counts": aimed.tolist()}
