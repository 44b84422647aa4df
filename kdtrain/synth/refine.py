"""Teacher-guided refinement: pull surrogate images toward what the teacher remembers of its data.

A teacher with BatchNorm layers keeps the running mean and variance of its training data's features
at every BN input. Starting from a surrogate image (already diverse), a few optimisation steps on its
pixels minimise
    ce_weight  x CE(teacher(x), target)                        (a class chosen as the attack chooses)
  + bn_weight  x sum over BN layers of ||mu_batch - running_mean||_2 + ||var_batch - running_var||_2
  + tv_weight  x mean |x - shifted x|                          (total variation: smooth images)
  + l2_weight  x mean x^2
with the teacher frozen (eval mode: its buffers never move). The statistics term is DeepInversion's
(Yin et al. 2020), which starts from noise and needs thousands of steps; from surrogate images a few
dozen suffice. Used offline by `kdtrain refine` (shards with metadata) and online as a distillation
batch hook (`--refine`), alone or before the boundary attack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdgen.settings import parse_key_values
from kdtrain.errors import KDError
from kdtrain.synth.attack import check_schedule, choose_targets, frozen, replace_rows
from kdtrain.train.config import knob

TARGETS = ("fair", "uniform", "least-predicted", "proportional")


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
    optimizer: str = knob("adam", "adam or sign")
    ce_weight: float = knob(1.0, "weight of the cross-entropy toward each image's target class")
    bn_weight: float = knob(1.0, "weight of the distance of the batch's BN-input statistics to the running ones")
    tv_weight: float = knob(0.05, "weight of the L1 total variation")
    l2_weight: float = knob(0.0, "weight of the mean squared pixel value")
    target: str = knob("fair", "target class choice: fair (every class an equal share, a source's own class "
                               "included), uniform, least-predicted or proportional (as the attack)")

    def validate(self) -> RefineConfig:
        if self.steps < 1:
            raise KDError(f"refine steps must be at least 1, got {self.steps}")
        if self.window < 1:
            raise KDError(f"refine window must be at least 1, got {self.window}")
        if not 0 <= self.plateau < 1:
            raise KDError(f"refine plateau must be a fraction in [0, 1), got {self.plateau}")
        if not self.lr > 0:
            raise KDError(f"refine lr must be positive, got {self.lr}")
        if self.optimizer not in ("adam", "sign"):
            raise KDError(f"refine optimizer {self.optimizer!r}: use adam or sign")
        if self.target not in TARGETS:
            raise KDError(f"refine target {self.target!r}: use one of {', '.join(TARGETS)}")
        for f in ("ce_weight", "bn_weight", "tv_weight", "l2_weight"):
            v = getattr(self, f)
            if not (v >= 0 and np.isfinite(v)):
                raise KDError(f"refine {f.replace('_', '-')} must be a finite number >= 0, got {v}")
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


def batchnorm_layers(teacher) -> list[nn.modules.batchnorm._BatchNorm]:
    """The teacher's BatchNorm layers with running statistics, or a one-line error naming what works."""
    model = teacher.model
    eager = isinstance(model, nn.Module) and not isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule))
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats and m.running_mean is not None] if eager else []
    if not layers:
        kind = "this teacher has no BatchNorm layers" if eager else "a TorchScript or .pt2 teacher hides its layers"
        raise KDError(f"refinement matches the teacher's BatchNorm statistics, but {kind}; it needs an eager "
                      "model with BatchNorm (a kdtrain checkpoint, or a state_dict with --teacher-arch)")
    return layers


class StatsProbe:
    """Forward hooks on the BN layers: after a forward, `loss()` is the summed distance between the
    batch's per-channel input mean/variance and the layers' running ones."""

    def __init__(self, layers):
        self.layers, self.terms, self.handles = layers, [], []

    def __enter__(self) -> StatsProbe:
        for layer in self.layers:
            self.handles.append(layer.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _hook(self, layer, inputs, _output) -> None:
        x = inputs[0].float()
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).flatten(1).var(dim=1, unbiased=False)
        self.terms.append(torch.linalg.vector_norm(mean - layer.running_mean.float())
                          + torch.linalg.vector_norm(var - layer.running_var.float()))

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
    with frozen(teacher), StatsProbe(layers) as probe:
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
            for _ in range(cfg.steps):
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
                        img -= cfg.lr * grad.sign()
                else:
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



class OnlineRefine:
    """Distillation batch hook: refine part of every `every`-th batch before the teacher labels it.

    `fraction` of the rows (random, from (seed, step, rank)) are refined together, so the statistics
    term sees a batch. Refined rows lose their data label (-1) and their mixup partner (lambda 1),
    as attacked rows do. Returns the same kind of batch it was given (tensor or the trainer's dict).
    """

    def __init__(self, teacher, cfg: RefineConfig | None = None, fraction: float = 1.0, every: int = 1,
                 seed: int = 0, rank: int = 0):
        check_schedule("refine", fraction, every)
        self.cfg = (cfg or RefineConfig()).validate()
        batchnorm_layers(teacher)  # refuse an unusable teacher before training starts
        self.teacher, self.fraction, self.every, self.seed, self.rank = teacher, fraction, every, seed, rank
        self.counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)

    def __call__(self, batch, step: int):
        images = batch["images"] if isinstance(batch, dict) else batch
        if step % self.every != 0 or len(images) == 0:
            return batch
        state = np.random.SeedSequence([self.seed, step, self.rank, 0x4EF]).generate_state(1, np.uint64)[0]
        gen = torch.Generator().manual_seed(int(state >> np.uint64(1)))
        n = len(images)
        rows = torch.randperm(n, generator=gen)[: max(1, round(self.fraction * n))].to(images.device)
        least = self.cfg.target == "least-predicted"
        # fair targets are balanced within the batch (no running counts), so a resumed run refines exactly
        res = refine_batch(self.teacher, images[rows], self.cfg, gen, self.counts if least else None)
        if least:
            self.counts += torch.bincount(res.pred.cpu(), minlength=len(self.counts))
        return replace_rows(batch, rows, res.images)


ONLINE = {"fraction": float, "every": int}  # OnlineRefine's own keys; the others are RefineConfig fields


def parse_options(text: str) -> tuple[dict, RefineConfig]:
    """`on` or `key=value,...` (RefineConfig fields and fraction/every; - or _ alike) -> (online, config)."""
    given, online = parse_key_values(text, RefineConfig, ONLINE, what="refine", error=KDError)
    return online, replace(RefineConfig(), **given).validate()


def make_refine_hook(config, teacher):
    """OnlineRefine from the trainer's config (`refine` field), or None when it is off."""
    text = getattr(config, "refine", None)
    if teacher is None or text in (None, False, "") or str(text).lower() in ("off", "none", "false", "0", "no"):
        return None
    online, cfg = parse_options(text)
    return OnlineRefine(teacher, cfg, seed=getattr(config, "seed", 0), rank=int(os.environ.get("RANK", 0)), **online)


def run_offline(teacher, batches, writer, cfg: RefineConfig, seed: int = 0, limit: int | None = None,
                match_stats: bool = True, progress=None) -> dict:
    """Refine every source image of `batches` and write it with its metadata; returns the run's counts.

    With match_stats the sources first take the teacher's input mean/std (as `--match-stats` does).
    Metadata (under "params"): source key and shard, target, steps (its batch's, as the plateau rule
    stopped it), the teacher's prediction and confidence on the stored 8-bit image, and the batch's
    statistics loss after. The returned counts hold the targets' and the predictions' classes.
    """
    from kdtrain.data.augment import match_stats as rescale
    from kdtrain.synth.attack import quantize, to_uint8

    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)
    aimed = torch.zeros_like(counts)  # targets handed out so far (fair targets balance these, not predictions)
    stats = {"sources": 0, "written": 0, "reached_target": 0, "bn_loss_start": 0.0, "bn_loss_end": 0.0,
             "confidence": 0.0, "steps": 0.0, "steps_max": 0}
    for batch in batches:
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - stats["sources"])]
        if len(x) == 0:
            break
        if match_stats:
            x = quantize(rescale(x.float(), teacher.spec.mean, teacher.spec.std))
        res = refine_batch(teacher, x, cfg, gen, (counts if cfg.target == "least-predicted" else aimed).clone())
        aimed += torch.bincount(res.target.cpu(), minlength=len(aimed))
        images = quantize(res.images)
        with frozen(teacher), torch.no_grad():
            conf, pred = teacher(images).float().softmax(1).max(1)
        counts += torch.bincount(pred.cpu(), minlength=len(counts))
        keys, urls = batch.get("keys"), batch.get("urls")
        for i, img in enumerate(to_uint8(images)):
            params = {"source": {"key": keys[i] if keys else None, "shard": urls[i] if urls else None},
                      "target": int(res.target[i]), "steps": res.steps, "teacher_pred": int(pred[i]),
                      "teacher_conf": round(float(conf[i]), 6), "bn_loss": round(res.bn_loss, 6)}
            writer.add(img, {"generator": "refine", "index": writer.index, "seed": seed, "params": params})
        k = len(x)
        stats["sources"] += k
        stats["written"] += k
        stats["reached_target"] += int((pred == res.target).sum())
        stats["bn_loss_start"] += res.bn_loss_start * k
        stats["bn_loss_end"] += res.bn_loss * k
        stats["confidence"] += float(conf.sum())
        stats["steps"] += res.steps * k
        stats["steps_max"] = max(stats["steps_max"], res.steps)
        if progress is not None:
            progress(k)
    n = max(1, stats["sources"])
    for key in ("bn_loss_start", "bn_loss_end", "confidence", "steps"):
        stats[key] = round(stats[key] / n, 4)
    stats["class_counts"] = counts.tolist()
    stats["target_counts"] = aimed.tolist()
    return stats
