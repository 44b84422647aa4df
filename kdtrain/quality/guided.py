"""Teacher-guided selection: keep, from a large raw pool, the generator's settings the teacher finds
in-distribution, an equal share per class.

Pixel refinement moves every image toward the teacher's BatchNorm statistics; this chooses among the
generator's own programs first. Every group of the pool (a shader program, a noise variant, a photo:
`group_of`) is scored by the BatchNorm statistics loss of its first GROUP_IMAGES images, the same
distance refinement minimises, and every image by the teacher's prediction. The kept set gives each
class an equal share of its predicted images, lowest-loss groups first (random within a group); a
class with too few images leaves its room to the others, again by group loss. The pool is streamed
once to score it and once to copy the kept images, so it may be far larger than memory; the cost is
one teacher forward per pool image, no backward (docs/RESULTS.md, "Teacher-guided selection").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kdtrain.synth.common import as_teacher_sees, frozen, teacher_device
from kdtrain.synth.refine import batchnorm_layers, stats_distance

# Selection's version, part of its sets' identity: bump it whenever the same pool, teacher and seed would
# keep other samples or write them in another order.
VERSION = 1
GROUP_IMAGES = 256  # images per group whose statistics give its loss (a refine batch's size)
GROUP_KEYS = ("program", "variant", "source")  # shaders, noise, photos; leaves have none: one group


def group_of(meta: dict | None) -> str:
    """The generator setting a pool sample was made with, from its metadata ('' where there is none)."""
    params = (meta or {}).get("params") or {}
    return next((str(params[k]) for k in GROUP_KEYS if k in params), "")


@dataclass
class PoolScore:
    preds: torch.Tensor  # N, the teacher's prediction of every pool image
    groups: list[str]  # group names, in order of first appearance
    group_ids: torch.Tensor  # N, each image's index into `groups`
    group_loss: torch.Tensor  # G, the BN statistics loss of each group's first GROUP_IMAGES images


class GroupStats:
    """Forward hooks on the BN layers that add each counted image's per-channel sums of x and x^2 to its
    group's, so a group's loss is exactly refinement's StatsProbe loss on a batch of those images."""

    def __init__(self, layers, stats: str = "raw"):
        self.layers, self.handles, self.stats = layers, [], stats
        self.sums: list[list[torch.Tensor]] = [[] for _ in layers]  # per layer: [sum x, sum x^2, positions]
        self.rows = self.ids = None

    def __enter__(self) -> GroupStats:
        for i, layer in enumerate(self.layers):
            self.handles.append(layer.register_forward_hook(lambda m, inp, out, i=i: self._hook(i, inp[0])))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def count(self, rows: torch.Tensor, ids: torch.Tensor) -> None:
        """The next forward's images at `rows` count toward groups `ids`."""
        self.rows, self.ids = rows, ids

    def _hook(self, i: int, x: torch.Tensor) -> None:
        if self.rows is None or not len(self.rows):
            return
        x = x[self.rows].float()
        s1, s2 = x.sum(dim=(2, 3)), (x * x).sum(dim=(2, 3))
        if not self.sums[i]:
            self.sums[i] = [torch.zeros(0, x.shape[1], dtype=torch.float64, device=x.device) for _ in range(2)]
            self.sums[i].append(x.shape[2] * x.shape[3])
        need = int(self.ids.max()) + 1
        for k in range(2):
            acc = self.sums[i][k]
            if len(acc) < need:
                acc = self.sums[i][k] = torch.cat([acc, acc.new_zeros(need - len(acc), acc.shape[1])])
            acc.index_add_(0, self.ids.to(acc.device), (s1, s2)[k].double())

    def losses(self, counts: torch.Tensor) -> torch.Tensor:
        """Each group's summed distance of its mean and variance to the layers' running statistics."""
        total = torch.zeros(len(counts), dtype=torch.float64)
        for layer, sums in zip(self.layers, self.sums, strict=True):
            if not sums:  # no image reached this layer's hook: an empty pool
                continue
            s1, s2, positions = sums
            n = counts[: len(s1)].to(s1.device, torch.float64).clamp(min=1)[:, None] * positions
            mean, sq = s1 / n, s2 / n
            var = sq - mean * mean
            total[: len(s1)] += stats_distance(mean, var, layer.running_mean.double(), layer.running_var.double(),
                                               self.stats).cpu()
        return total.float()


def score_pool(teacher, batches, progress=None, stats: str = "raw") -> PoolScore:
    """Stream the pool's batches (iterate_shards at the teacher's spec) through the teacher: each image's
    prediction, each group's BN loss (refinement's `stats` distance). Images take the teacher's input
    mean/std and the 8-bit grid first, as refinement and distillation's --match-stats see them."""
    layers = batchnorm_layers(teacher)
    device = teacher_device(teacher)
    names: dict[str, int] = {}
    preds, ids = [], []
    counted = torch.zeros(0, dtype=torch.long)
    with frozen(teacher), torch.no_grad(), GroupStats(layers, stats) as sums:
        for batch in batches:
            gid = torch.tensor([names.setdefault(group_of(m), len(names)) for m in batch["meta"]])
            if len(counted) < len(names):
                counted = torch.cat([counted, counted.new_zeros(len(names) - len(counted))])
            # an image counts while its group has fewer than GROUP_IMAGES: its rank among its group's so far
            order = torch.argsort(gid, stable=True)
            start = torch.searchsorted(gid[order], gid[order])
            rank = torch.empty_like(gid)
            rank[order] = torch.arange(len(gid)) - start
            keep = (counted[gid] + rank) < GROUP_IMAGES
            rows = keep.nonzero().squeeze(1)
            sums.count(rows.to(device), gid[rows])
            counted.index_add_(0, gid[rows], torch.ones_like(rows))
            x = as_teacher_sees(batch["images"], teacher.spec).to(device)
            preds.append(teacher(x).float().argmax(1).cpu())
            ids.append(gid)
            if progress:
                progress(len(gid))
        loss = sums.losses(counted)
    return PoolScore(preds=torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long), groups=list(names),
                     group_ids=torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long), group_loss=loss)


def select(score: PoolScore, n: int, classes: int, seed: int) -> np.ndarray:
    """Pool indices of the kept set, in a seeded random order (refine's batches then mix classes and
    groups): per class an equal share of its predicted images, lowest group loss first, random within a
    group; shortfalls filled from the rest by group loss."""
    rng = np.random.default_rng(seed)
    total = len(score.preds)
    loss = score.group_loss.numpy()[score.group_ids.numpy()]
    order = np.lexsort((rng.permutation(total), loss))  # by group loss, random within a group
    preds = score.preds.numpy()[order]
    share = [n // classes + (c < n % classes) for c in range(classes)]
    taken = np.zeros(total, dtype=bool)
    for c in range(classes):
        taken[np.flatnonzero(preds == c)[: share[c]]] = True
    taken[np.flatnonzero(~taken)[: max(0, n - int(taken.sum()))]] = True
    kept = order[taken]
    return kept[rng.permutation(len(kept))]


def summary(score: PoolScore, kept: np.ndarray, classes: int) -> dict:
    """What the selection kept: per-class counts, groups kept, best and worst groups by loss."""
    ranked = torch.argsort(score.group_loss).tolist()
    kept_groups = set(score.group_ids[torch.from_numpy(kept)].tolist())
    return {"pool_images": len(score.preds), "kept": len(kept), "groups": len(score.groups),
            "groups_kept": len(kept_groups),
            "class_counts": torch.bincount(score.preds[torch.from_numpy(kept)], minlength=classes).tolist(),
            "pool_class_counts": torch.bincount(score.preds, minlength=classes).tolist(),
            "best_groups": {score.groups[g]: round(float(score.group_loss[g]), 3) for g in ranked[:5]},
            "worst_groups": {score.groups[g]: round(float(score.group_loss[g]), 3) for g in ranked[-3:]}}


def write_kept(batches, kept: np.ndarray, writer) -> None:
    """Copy the kept pool images (a second pass over the same batches) into `writer`, in `kept`'s order,
    each with its pool sample's metadata and no label (refinement labels them)."""
    from kdtrain.synth.common import to_uint8

    where = {int(i): k for k, i in enumerate(kept)}
    images: list = [None] * len(kept)
    metas: list = [None] * len(kept)
    seen = 0
    for batch in batches:
        for j, (img, meta, key) in enumerate(zip(to_uint8(batch["images"]), batch["meta"], batch["keys"],
                                                 strict=True)):
            k = where.get(seen + j)
            if k is not None:
                images[k], metas[k] = img, {**(meta or {}), "pool_key": key}
        seen += len(batch["keys"])
    for img, meta in zip(images, metas, strict=True):
        writer.add(img, meta)
