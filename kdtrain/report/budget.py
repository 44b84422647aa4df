"""The budget curve: student top-1 against training samples seen, over runs of the same sets at several
budgets (run folders the report config's layout names): a table with each set's ratio to the reference
student at the same budget, and a log-scale figure."""

from __future__ import annotations

from pathlib import Path

from kdtrain.report.runs import read_summary


def collect(roots: list[Path], students: str = "*") -> dict[str, dict[int, dict]]:
    """set name -> {samples seen -> summary} over the students (a glob of run folders) of every root that
    has finished."""
    curves: dict[str, dict[int, dict]] = {}
    for root in roots:
        for f in sorted(Path(root).glob(f"{students}/summary.json")):
            s = read_summary(f)
            if s.get("student_top1") is None or not s.get("samples_seen"):
                continue
            curves.setdefault(f.parent.name, {})[int(s["samples_seen"])] = s
    return curves


def table(curves: dict[str, dict[int, dict]], reference: str | None = None) -> str:
    """Markdown: one row per set, one column per budget, 'top-1 (ratio to the reference)'."""
    budgets = sorted({n for c in curves.values() for n in c})
    if not budgets:
        return ""
    ref = curves.get(reference, {})
    head = "| set | " + " | ".join(f"{n:,} samples" for n in budgets) + " |"
    rows = [head, "|---" * (len(budgets) + 1) + "|"]
    order = [reference] * (reference in curves) + sorted(k for k in curves if k != reference)
    for name in order:
        cells = []
        for n in budgets:
            s = curves[name].get(n)
            if s is None:
                cells.append("—")
                continue
            top1 = s["student_top1"]
            r = ref.get(n, {}).get("student_top1")
            cells.append(f"{100 * top1:.1f}%" + (f" ({100 * top1 / r:.1f}%)" if r and name != reference else ""))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(curves: dict[str, dict[int, dict]], out: Path, reference: str | None = None,
         batch: str | None = None) -> Path | None:
    """Top-1 against samples seen (log x), one line per set; the reference dashed. `batch`: the runs' batch
    size, for the axis label."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in sorted(curves, key=lambda k: (k != reference, k)):
        pts = sorted(curves[name].items())
        ax.plot([n for n, _ in pts], [100 * s["student_top1"] for _, s in pts], "--" if name == reference else "-",
                marker="o", label=name, linewidth=2 if name == reference else 1.2)
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen" + (f" (batch {batch})" if batch else ""))
    ax.set_ylabel("student top-1 on the real test set (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
