#!/usr/bin/env bash
# The one command's defaults on datasets x teacher architectures (docs/RESULTS.md, issue 23's grid): for each
# pair, a teacher trained by `kdtrain teacher`, a student distilled on the teacher's own training images (the
# yardstick) and `kdtrain student` from the teacher file alone, then one table of every finished row.
#
#   bench/grid.sh                                   # DATASETS="fashion-mnist digits" ARCHS="resnet8 tv:shufflenet_v2_x0_5"
#   DATASETS=digits ARCHS=resnet8 bench/grid.sh     # one row
#
# A second student on the same refined images without the online attack (noadv-BUDGET) shows what the attack
# adds on each row; the same two without teacher-guided selection (`--select off`: off-BUDGET, off-noadv-BUDGET)
# show what the selection adds. Every step resumes: a finished step is skipped, a killed one continues from its checkpoint. The rows of
# bench/teacher_formats.sh (a user's own module as .pt2, runs/custom-DATA, with off-pt2 and the noadv rows made as
# here) join the table where they exist.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATASETS=${DATASETS:-"fashion-mnist digits"}
ARCHS=${ARCHS:-"resnet8 tv:shufflenet_v2_x0_5"}
BUDGET=${BUDGET:-1x}
IMAGES=${IMAGES:-2500}
ROOT=${ROOT:-runs/grid}
STEPS=$(( $(echo "$BUDGET" | tr -d x) * 1500 ))

run() { echo "+ $*"; "$@"; }
epochs() { case $1 in digits) echo 40 ;; *) echo 4 ;; esac; }  # digits has 1,438 training images

for data in $DATASETS; do
  for arch in $ARCHS; do
    R=$ROOT/$data-${arch//[:\/]/_}
    [ -f "$R/teacher/summary.json" ] || run "$BIN/kdtrain" teacher --arch "$arch" --data "$data" \
      --epochs "$(epochs "$data")" --out "$R/teacher" --no-progress --resume
    T=$R/teacher/teacher.pt
    [ -f "$R/original/summary.json" ] || run "$BIN/kdtrain" distill --teacher "$T" --data "$data" \
      --steps "$STEPS" --no-progress --out "$R/original" --resume
    for select in guided off; do
      S=student; [ $select = off ] && S=off
      [ -f "$R/$S-$BUDGET/summary.json" ] || run "$BIN/kdtrain" student --teacher "$T" --out "$R/$S-$BUDGET" \
        --budget "$BUDGET" --images "$IMAGES" --select $select --eval "$data" --reference "$R/original" --no-progress
      # the same refined images without the online attack (the one command's other choice), as its stage 3 runs
      N=noadv; [ $select = off ] && N=off-noadv
      [ -f "$R/$N-$BUDGET/summary.json" ] || run "$BIN/kdtrain" distill --teacher "$T" --eval "$data" \
        --shards "$R/$S-$BUDGET/data/shaders_ref-0*.tar" --steps "$STEPS" --samples-per-epoch $(( STEPS * 128 / 10 )) \
        --no-progress --no-tensorboard --out "$R/$N-$BUDGET" --resume
    done
  done
done

"$BIN/python" - "$ROOT" "$BUDGET" <<'PY'
import json, sys
from pathlib import Path

root, b = Path(sys.argv[1]), sys.argv[2]
# (column, run folder suffix): the recipe's six variants; guided_generation.sh makes the two unrefined ones
VARIANTS = [("select off, unrefined", "raw-random"), ("select off, refined", "off-noadv"),
            ("select off, refined + attack", "off"), ("guided, unrefined", "raw-guided"),
            ("guided, refined", "noadv"), ("guided, refined + attack (the defaults)", "student")]
cells = [(r, r / "teacher" / "summary.json", b) for r in sorted(p for p in root.glob("*") if p.is_dir())]
cells += [(r, r / "teacher" / "teacher_top1.json", "pt2") for r in sorted(Path("runs").glob("custom-*"))]


def top1(run: Path):
    f = run / "summary.json"
    return json.loads(f.read_text())["student_top1"] if f.is_file() else None


print(f"| cell ({b}) | teacher | original-data student | " + " | ".join(v for v, _ in VARIANTS)
      + " | refine BN loss | rel. entropy | fewest |")
print("|---" * (len(VARIANTS) + 6) + "|")
worst = {v: None for v, _ in VARIANTS}
for r, teacher, tag in cells:
    o = top1(r / "original")
    if not (teacher.is_file() and o and (r / f"student-{tag}" / "summary.json").is_file()):
        continue
    t = json.loads(teacher.read_text())
    t = t.get("top1", t.get("student_top1"))  # teacher_top1.json or a kdtrain teacher summary
    cols = []
    for v, run in VARIANTS:
        s = top1(r / f"{run}-{tag}")
        cols.append(f"{100 * s:.1f}% ({100 * s / o:.1f}%)" if s is not None else "—")
        if s is not None:
            worst[v] = min(worst[v] if worst[v] is not None else 9.0, s / o)
    ref = json.loads((r / f"student-{tag}" / "summary.json").read_text())["stages"].get("refine", {})
    bn, counts = ref.get("bn_loss") or [float("nan")] * 2, ref.get("class_counts") or [0]
    print(f"| {r.name} | {100 * t:.1f}% | {100 * o:.1f}% | " + " | ".join(cols)
          + f" | {bn[0]:.2f} -> {bn[1]:.2f} | {ref.get('class_entropy', float('nan')):.3f} | {min(counts)} |")
print("| worst case | | | " + " | ".join(f"{100 * w:.1f}%" if w is not None else "—" for w in worst.values())
      + " | | | |")
PY
