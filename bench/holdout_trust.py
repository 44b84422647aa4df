"""How far a user without labelled data can trust held-out agreement to rank students (docs/RESULTS.md).

Each distillation measures its student on a held-out slice of its *own* surrogate set; across sets those
figures are not comparable (a set of easy images scores high). This measures every student of a pipeline
run on *one common* held-out set -- the held-out samples of the refined sets, pooled -- and gives the
Spearman rank correlation of that agreement (and of each run's own held-out agreement) with real top-1:

    .venv/bin/python bench/holdout_trust.py --runs runs/demo --data data/demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdtrain.data.holdout import load_held_out  # noqa: E402
from kdtrain.models.teachers import load_teacher  # noqa: E402
from kdtrain.report.stats import spearman  # noqa: E402
from kdtrain.train.evaluate import HoldoutEvaluator  # noqa: E402

COMMON = ("shaders_ref", "leaves_ref", "noise_ref", "photos_ref")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/demo")
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--fraction", type=float, default=0.05, help="distill's --holdout of the runs")
    ap.add_argument("--limit", type=int, default=2000)
    args = ap.parse_args()
    runs, data = Path(args.runs), Path(args.data)
    teacher = load_teacher(runs / "teacher" / "teacher.pt")
    sets = [sorted(str(p) for p in data.glob(f"{name}-0*.tar")) for name in COMMON]
    images, _ = load_held_out([s for s in sets if s], teacher.spec, args.fraction, args.limit)
    common = HoldoutEvaluator(images, teacher.spec, torch.device("cpu"), match_stats=True)
    rows = []
    for folder in sorted((runs / "students").iterdir()):
        summary, model = folder / "summary.json", folder / "student.pt"
        if not (summary.is_file() and model.is_file()):
            continue
        s = json.loads(summary.read_text())
        student = load_teacher(model).model.eval()
        res = common(student, teacher)
        rows.append((folder.name, s.get("student_top1"), s.get("holdout_agreement"), res["holdout_agreement"]))
    print(f"common held-out set: {len(common)} refined images ({', '.join(COMMON)}), teacher {runs / 'teacher'}")
    print("| set | student top-1 | own held-out agreement | agreement on the common held-out set |")
    print("|---|---|---|---|")
    for name, top1, own, com in rows:
        own_s = "—" if own is None else f"{100 * own:.1f}%"
        print(f"| `{name}` | {100 * top1:.1f}% | {own_s} | {100 * com:.1f}% |")
    with_own = [r for r in rows if r[2] is not None]
    own_rho = spearman([r[2] for r in with_own], [r[1] for r in with_own])
    common_rho = spearman([r[3] for r in rows], [r[1] for r in rows])
    print(f"Spearman with real top-1: own held-out agreement {own_rho:.2f} (n={len(with_own)}); "
          f"common held-out agreement {common_rho:.2f} (n={len(rows)})")


if __name__ == "__main__":
    main()
