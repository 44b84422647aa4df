#!/usr/bin/env bash
# Teacher-guided selection against pixel refinement, on one cell of bench/grid.sh (docs/RESULTS.md, "Teacher-guided
# generation"): students (1x, no attack, as the grid's noadv rows) on the cell's unrefined images, the first
# --images rendered (off-BUDGET/data/shaders: a random draw) and the teacher-guided selection from the pool
# (student-BUDGET/data/shaders), beside the grid's refined rows; then what each stage cost, from the runs' stages.json.
#
#   R=runs/grid/digits-resnet8 DATA=digits bench/guided_generation.sh     # after bench/grid.sh made that cell
#   R=runs/custom-digits DATA=digits TAG=pt2 T=runs/custom-digits/teacher/pt2/teacher.pt2 bench/guided_generation.sh
set -euo pipefail
BIN=${BIN:-.venv/bin}
R=${R:-runs/grid/fashion-mnist-resnet8}
DATA=${DATA:-fashion-mnist}
BUDGET=${BUDGET:-1x}
TAG=${TAG:-$BUDGET}  # the runs' suffix: student-TAG, off-TAG (pt2 for bench/teacher_formats.sh's rows)
STEPS=$(( $(echo "$BUDGET" | tr -d x) * 1500 ))
T=${T:-$R/teacher/teacher.pt}
run() { echo "+ $*"; "$@"; }

for set in random guided; do
  from=$R/student-$TAG; [ $set = random ] && from=$R/off-$TAG
  [ -f "$R/raw-$set-$TAG/summary.json" ] || run "$BIN/kdtrain" distill --teacher "$T" --eval "$DATA" \
    --shards "$from/data/shaders-0*.tar" --steps "$STEPS" --samples-per-epoch $(( STEPS * 128 / 10 )) \
    --no-progress --no-tensorboard --out "$R/raw-$set-$TAG" --resume
done

"$BIN/python" - "$R" "$TAG" <<'PY'
import json, sys
from pathlib import Path
r, b = Path(sys.argv[1]), sys.argv[2]
top = lambda run: json.loads((r / run / "summary.json").read_text())["student_top1"]
o = top("original")
print(f"{r.name}, {b}, no attack; original-data student {100 * o:.1f}%")
for label, run in (("random draw, unrefined", f"raw-random-{b}"), ("guided selection, unrefined", f"raw-guided-{b}"),
                   ("random draw, refined", f"off-noadv-{b}"), ("guided selection, refined", f"noadv-{b}")):
    print(f"  {label:28s} {100 * top(run):.1f}%  ({100 * top(run) / o:.1f}%)")
for run in (f"off-{b}", f"student-{b}"):
    st = json.loads((r / run / "stages.json").read_text())["done"]
    print(f"  {run}: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in st.items() if k != "distill"))
PY
