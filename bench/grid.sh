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
root, budget = Path(sys.argv[1]), sys.argv[2]
rows = [(r, r / "teacher" / "summary.json", r / "original", r / f"student-{budget}", r / f"noadv-{budget}",
         r / f"off-{budget}", r / f"off-noadv-{budget}") for r in sorted(p for p in root.glob("*") if p.is_dir())]
rows += [(r, r / "teacher" / "teacher_top1.json", r / "original", r / "student-pt2", r / "noadv-pt2", r / "off-pt2",
          r / "off-noadv-pt2") for r in sorted(Path("runs").glob("custom-*"))]


def top1(run: Path, o: float) -> str:
    if not (run / "summary.json").is_file():
        return "— | —"
    n = json.loads((run / "summary.json").read_text())["student_top1"]
    return f"{100 * n:.1f}% | {100 * n / o:.1f}%"


print(f"| run | teacher top-1 | original-data student | kdtrain student ({budget}) | % | without the attack | % "
      "| `--select off` | % | `--select off`, no attack | % | refine BN loss | rel. entropy | fewest images |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, teacher, original, student, noadv, off, offnoadv in rows:
    if not (teacher.is_file() and (original / "summary.json").is_file() and (student / "summary.json").is_file()):
        continue
    t = json.loads(teacher.read_text())
    t = t.get("top1", t.get("student_top1"))  # teacher_top1.json or a kdtrain teacher summary
    o = json.loads((original / "summary.json").read_text())["student_top1"]
    s = json.loads((student / "summary.json").read_text())
    ref = s["stages"]["refine"]
    counts = ref.get("class_counts") or []
    bn = ref.get("bn_loss") or [float("nan")] * 2
    ent = ref.get("class_entropy", float("nan"))
    tt = f"{100 * t:.1f}%" if isinstance(t, float) else "?"
    print(f"| {name.name} | {tt} | {100 * o:.1f}% | {100 * s['student_top1']:.1f}% | {100 * s['student_top1'] / o:.1f}% "
          f"| {top1(noadv, o)} | {top1(off, o)} | {top1(offnoadv, o)} | {bn[0]:.2f} -> {bn[1]:.2f} | {ent:.3f} "
          f"| {min(counts) if counts else '?'} |")
PY
