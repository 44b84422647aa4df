"""The report's figures: student top-1 per set (with the reference and targets), and each score metric
against student top-1."""

from __future__ import annotations

from pathlib import Path

from kdtrain.report.runs import SetRun

METRICS = (("relative_entropy", "relative entropy"), ("mean_max_softmax", "confidence"),
           ("diversity", "diversity"), ("mean_top2_margin", "top-2 margin"), ("feature_spread", "feature spread"),
           ("coverage", "coverage"), ("nn_ratio", "nearest-sample distance ratio"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(runs: list[SetRun], teacher_top1: float | None, path: Path, reference_label: str) -> None:
    """Student top-1 per set; the reference student as a line (labelled `reference_label`), each target as a
    red tick."""
    plt = _pyplot()
    ref = next((r.top1 for r in runs if r.is_reference), None)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(runs) + 2), 3.6))
    xs = range(len(runs))
    tops = [100 * (r.top1 or 0) for r in runs]
    colours = ["#777777" if r.is_reference else "#d62728" if r.is_attack else "#1f77b4" for r in runs]
    ax.bar(xs, tops, color=colours)
    if any(r.is_attack for r in runs):
        ax.bar([0], [0], color="#d62728", label="attacked set")  # a legend entry only
    for x, t in zip(xs, tops):  # inside the bar top, clear of the target ticks
        ax.text(x, max(t - 6, 1), f"{t:.1f}", ha="center", color="white", fontsize=8)
    if ref:
        ax.axhline(100 * ref, color="black", lw=1, label=f"{reference_label} {100 * ref:.1f}%")
        label = "target"  # one legend entry for all target ticks
        for x, r in zip(xs, runs):
            if r.target:
                ax.hlines(100 * ref * r.target["fraction"], x - 0.4, x + 0.4, colors="red", lw=2, linestyles="dashed",
                          label=label)
                label = None
    if teacher_top1:
        ax.axhline(100 * teacher_top1, color="green", lw=1, ls=":", label=f"teacher {100 * teacher_top1:.1f}%")
    ax.set_xticks(list(xs), [r.name for r in runs], rotation=30, ha="right")
    ax.set_ylabel("student top-1 (%)")
    ax.set_ylim(0, 105)
    if ax.get_legend_handles_labels()[0]:  # nothing to label without a reference, attack or teacher
        ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scored(runs: list[SetRun]) -> list[SetRun]:
    """The students whose data has a score: the points of the score figure and the Spearman table."""
    return [r for r in runs if r.score and r.top1 is not None]


def plot_score_vs_top1(runs: list[SetRun], path: Path) -> None:
    """One scatter per score metric against student top-1 over the scored students (there must be some)."""
    plt = _pyplot()
    pts = scored(runs)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3 * len(METRICS), 3), sharey=True)
    for ax, (key, label) in zip(axes, METRICS):
        for r in pts:
            v = r.score.get(key)
            if v is not None:
                ax.scatter(v, 100 * r.top1, s=18)
                ax.annotate(r.name, (v, 100 * r.top1), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(label)
    axes[0].set_ylabel("student top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
