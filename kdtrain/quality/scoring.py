"""Dataset quality scores of a surrogate set under a teacher (the paper's criteria), streamed.

Everything is accumulated batch by batch in float64 sums, so a set of any size is scored in one
pass with memory independent of its size; only a fixed-size random sample of pooled features is
kept, for the 2-D projection in the figure.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kdtrain.errors import UserError
from kdtrain.synth.common import teacher_device

# The metrics of one set, in table order: key, column header, format.
COLUMNS = [
    ("n", "samples", "{:d}"),
    ("relative_entropy", "rel.entropy", "{:.3f}"),
    ("num_never_predicted", "never-pred", "{:d}"),
    ("mean_max_softmax", "max-softmax", "{:.3f}"),
    ("mean_entropy", "entropy", "{:.3f}"),
    ("mean_top2_margin", "top2-margin", "{:.3f}"),
    ("feature_spread", "feat-spread", "{:.3f}"),
    ("diversity", "diversity", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("nn_ratio", "nn-ratio", "{:.2f}"),
    ("teacher_accuracy", "teacher-acc", "{:.3f}"),
]


def relative_entropy(counts) -> float | None:
    """The paper's class-balance criterion: entropy of the class histogram over log(C) (1: every class
    alike, 0: one class); None when the histogram is empty."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    total = counts.sum()
    if total == 0:
        return None
    if len(counts) < 2:
        return 1.0
    p = counts[counts > 0] / total
    return float(-(p * p.log()).sum() / math.log(len(counts)))


def balance(counts) -> float | None:
    """relative_entropy rounded as manifests and summaries keep it (4 places); None for an empty histogram."""
    rel = relative_entropy(counts)
    return None if rel is None else round(rel, 4)


class SetScorer:
    """Streaming accumulator of the scores of one set: feed `update(logits, features)` per batch."""

    def __init__(self, num_classes: int, sample_size: int = 2000, seed: int = 0):
        self.c = num_classes
        self.counts = torch.zeros(num_classes, dtype=torch.float64)
        self.n = 0
        self.sum_max = self.sum_entropy = self.sum_margin = 0.0
        self.sum_f = None  # C,D per-class sums of L2-normalised features
        self.sum_f2 = None  # C,D per-class sums of squares
        self.sample_size = sample_size
        self.generator = torch.Generator().manual_seed(seed)
        self.sample_keys = torch.zeros(0, dtype=torch.float64)
        self.sample_feats = None
        self.sample_preds = torch.zeros(0, dtype=torch.long)
        self.labelled = self.correct = 0  # teacher accuracy where samples carry labels (real test sets)

    def update(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        logits = logits.detach().double().cpu()
        f = torch.nn.functional.normalize(features.detach().double().cpu().flatten(1), dim=1)
        if logits.shape[1] != self.c:
            raise ValueError(f"teacher gave {logits.shape[1]} logits, expected {self.c}")
        p = logits.softmax(1)
        top2 = p.topk(min(2, self.c), dim=1).values
        pred = p.argmax(1)
        self.n += len(p)
        if labels is not None:
            known = labels.cpu() >= 0
            self.labelled += int(known.sum())
            self.correct += int((pred[known] == labels.cpu()[known]).sum())
        self.counts += torch.bincount(pred, minlength=self.c).double()
        self.sum_max += float(top2[:, 0].sum())
        self.sum_margin += float((top2[:, 0] - top2[:, -1]).sum()) if self.c > 1 else 0.0
        self.sum_entropy += float(-(p * p.clamp_min(1e-300).log()).sum())
        if self.sum_f is None:
            self.sum_f = torch.zeros(self.c, f.shape[1], dtype=torch.float64)
            self.sum_f2 = torch.zeros_like(self.sum_f)
            self.sample_feats = torch.zeros(0, f.shape[1], dtype=torch.float64)
        self.sum_f.index_add_(0, pred, f)
        self.sum_f2.index_add_(0, pred, f * f)
        # uniform sample without replacement: keep the rows with the smallest random keys
        keys = torch.cat([self.sample_keys, torch.rand(len(f), generator=self.generator, dtype=torch.float64)])
        feats = torch.cat([self.sample_feats, f])
        preds = torch.cat([self.sample_preds, pred])
        order = keys.argsort()[: self.sample_size]
        self.sample_keys, self.sample_feats, self.sample_preds = keys[order], feats[order], preds[order]

    def result(self, class_names=None) -> dict:
        if self.n == 0:
            raise UserError("no samples to score: the shards matched hold no images")
        names = list(class_names) if class_names else [str(i) for i in range(self.c)]
        rel_entropy = relative_entropy(self.counts)
        k = self.counts
        # per-class feature spread: mean over dimensions of the unbiased per-dimension std
        mean = self.sum_f / k.clamp_min(1).unsqueeze(1)
        var = (self.sum_f2 - k.unsqueeze(1) * mean * mean) / (k - 1).clamp_min(1).unsqueeze(1)
        spread = var.clamp_min(0).sqrt().mean(1)
        per_class = [float(s) if k[i] >= 2 else None for i, s in enumerate(spread)]
        valid = [s for s in per_class if s is not None]
        # mean pairwise cosine distance over all pairs i != j, exactly: sum_ij f_i.f_j = |sum_i f_i|^2
        total = self.sum_f.sum(0)
        diversity = 1 - (float(total @ total) - self.n) / (self.n * (self.n - 1)) if self.n > 1 else 0.0
        return {
            "n": self.n,
            "class_counts": [int(c) for c in self.counts],
            "relative_entropy": rel_entropy,
            "never_predicted": [names[i] for i in range(self.c) if self.counts[i] == 0],
            "num_never_predicted": int((self.counts == 0).sum()),
            "mean_max_softmax": self.sum_max / self.n,
            "mean_entropy": self.sum_entropy / self.n,
            "mean_top2_margin": self.sum_margin / self.n,
            "feature_spread_per_class": per_class,
            "feature_spread": float(np.mean(valid)) if valid else None,
            "diversity": diversity,
            "teacher_accuracy": self.correct / self.labelled if self.labelled else None,
        }


@torch.no_grad()
def score_batches(teacher, batches, limit: int | None = None, sample_size: int = 2000, seed: int = 0) -> SetScorer:
    """Run the teacher over batches of {"images": N,C,H,W in [0,1]} and accumulate the scores."""
    scorer = SetScorer(int(teacher.num_classes), sample_size, seed)
    device = teacher_device(teacher)
    for batch in batches:
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - scorer.n)]
        if len(x) == 0:
            break
        labels = batch.get("labels")
        labels = labels[: len(x)] if labels is not None else None
        x = x.to(device, torch.float32)
        # one forward for both where the teacher offers it, else two
        both = getattr(teacher, "logits_and_features", None)
        logits, feats = both(x) if both is not None else (teacher(x), teacher.features(x))
        scorer.update(logits, feats, labels)
        if limit is not None and scorer.n >= limit:
            break
    return scorer


def neighbour_radius(real: torch.Tensor) -> torch.Tensor:
    """The median distance of a real feature (n >= 2, D) to its nearest other real feature."""
    d_real = torch.cdist(real, real)
    d_real.fill_diagonal_(float("inf"))
    return d_real.min(1).values.median()


def coverage(real: torch.Tensor, fake: torch.Tensor, radius: torch.Tensor | None = None) -> tuple[float, float]:
    """How much of the real data's feature space a set reaches, both (n, D) features as the scorer keeps them:
    (coverage: share of the real images whose nearest `fake` feature is closer than the median distance of a
    real image to its nearest other real image, 1 = all of them; distance ratio: the median distance of a real
    image to its nearest `fake` feature over that median real-to-real one, 1 = as near as real neighbours).
    `radius`: neighbour_radius(real), where several sets are measured against the same real features."""
    if len(real) < 2 or len(fake) == 0:
        return 0.0, float("inf")
    radius = neighbour_radius(real) if radius is None else radius
    nearest = torch.cdist(real, fake).min(1).values
    return float((nearest < radius).double().mean()), float(nearest.median() / radius)


def format_table(results: dict[str, dict]) -> str:
    """One row per set, one column per metric (None shown as '-')."""
    header = ["set"] + [h for _, h, _ in COLUMNS]
    rows = [header]
    for name, r in results.items():
        rows.append([name] + ["-" if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows)


def pca_2d(samples: list[np.ndarray], fit_on: np.ndarray | None = None) -> list[np.ndarray]:
    """Project each array (n_i, D) onto the top-2 principal axes of `fit_on` (default: all of them).

    One shared basis, so the sets' clouds can be compared with each other and with real images.
    """
    ref = fit_on if fit_on is not None and len(fit_on) > 1 else np.concatenate([s for s in samples if len(s)])
    center = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - center, full_matrices=False)
    basis = vt[:2].T
    if basis.shape[1] < 2:  # degenerate 1-D features
        basis = np.pad(basis, ((0, 0), (0, 2 - basis.shape[1])))
    return [(s - center) @ basis for s in samples]


def plot_scores(scorers: dict[str, SetScorer], path, class_names, eval_scorer: SetScorer | None = None) -> None:
    """One row per set: class histogram of teacher predictions | 2-D PCA of teacher features.

    Real test images, when given, are drawn in grey under every set's cloud (the paper's Figure 2)
    and the PCA basis is fitted on them, so the axes mean the same thing in every row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = len(class_names)
    names = list(scorers)
    feats = [scorers[n].sample_feats.numpy() for n in names]
    ref = eval_scorer.sample_feats.numpy() if eval_scorer is not None else None
    proj = pca_2d(feats + ([ref] if ref is not None else []), fit_on=ref)
    ref_proj = proj[-1] if ref is not None else None
    cmap = plt.get_cmap("tab10" if c <= 10 else "tab20")
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        s = scorers[name]
        ax = axes[row, 0]
        frac = (s.counts / max(s.n, 1)).numpy()
        ax.bar(range(c), frac, color=[cmap(i % cmap.N) for i in range(c)])
        ax.axhline(1 / c, color="k", lw=0.8, ls="--")
        ax.set_title(f"{name}: teacher predictions (n={s.n})", fontsize=9)
        ax.set_ylabel("fraction")
        if c <= 20:
            ax.set_xticks(range(c), class_names, rotation=45, ha="right", fontsize=7)
        ax = axes[row, 1]
        if ref_proj is not None:
            ax.scatter(ref_proj[:, 0], ref_proj[:, 1], s=3, c="0.75", label="real test images")
        p = proj[row]
        ax.scatter(p[:, 0], p[:, 1], s=4, c=[cmap(int(i) % cmap.N) for i in s.sample_preds], alpha=0.8)
        ax.set_title(f"{name}: teacher features, PCA (colour = predicted class)", fontsize=9)
        if ref_proj is not None:
            ax.legend(loc="best", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
