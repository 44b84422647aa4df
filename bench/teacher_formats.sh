#!/usr/bin/env bash
# Teachers the project did not train (docs/RESULTS.md): bench/custom_teacher.py's network, trained with
# plain torch, then `kdtrain student` run on each of its files (a kdtrain checkpoint of the user's
# architecture, a torch.export .pt2, TorchScript) beside a student distilled on the original data.
#
#   DATA=fashion-mnist bench/teacher_formats.sh        # or DATA=digits; FORMATS="pt2" for one format
#
# Each step resumes (the teacher is trained once; distill and `kdtrain student` continue a killed run).
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=${DATA:-fashion-mnist}
R=${R:-runs/custom-$DATA}
BUDGET=${BUDGET:-1x}
IMAGES=${IMAGES:-5000}
FORMATS=${FORMATS:-"pt pt2 ts"}
EPOCHS=${EPOCHS:-3}
ARCH=bench/custom_teacher.py:make

run() { echo "+ $*"; "$@"; }

[ -f "$R/teacher/teacher_top1.json" ] || run "$BIN/python" bench/custom_teacher.py --data "$DATA" --epochs "$EPOCHS" --out "$R/teacher"
# the original-data student: the same distillation on the teacher's real training images
[ -f "$R/original/summary.json" ] || run "$BIN/kdtrain" distill --teacher "$R/teacher/pt2/teacher.pt2" --data "$DATA" \
  --steps $(( $(echo "$BUDGET" | tr -d x) * 1500 )) --no-progress --out "$R/original" --resume
for fmt in $FORMATS; do
  arch=(); [ "$fmt" = pt ] && arch=(--teacher-arch "$ARCH")
  [ -f "$R/student-$fmt/summary.json" ] || run "$BIN/kdtrain" student --teacher "$R/teacher/$fmt/teacher.$fmt" "${arch[@]}" \
    --out "$R/student-$fmt" --budget "$BUDGET" --images "$IMAGES" --eval "$DATA" --reference "$R/original" --no-progress
done
"$BIN/python" - "$R" $FORMATS <<'EOF'
import json, sys
from pathlib import Path
r, fmts = Path(sys.argv[1]), sys.argv[2:]
t = json.loads((r / "teacher" / "teacher_top1.json").read_text())
o = json.loads((r / "original" / "summary.json").read_text())["student_top1"]
print(f"teacher ({t['data']}, {t['epochs']} epochs): {100 * t['top1']:.1f}%; original-data student {100 * o:.1f}%")
print("| teacher file | student top-1 | % of the original-data student | held-out agreement |")
print("|---|---|---|---|")
for f in fmts:
    p = r / f"student-{f}" / "summary.json"
    if p.is_file():
        s = json.loads(p.read_text())
        top1, held = s.get("student_top1"), s.get("holdout_agreement")
        print(f"| {f} | {100 * top1:.1f}% | {100 * top1 / o:.1f}% | {100 * held:.1f}% |")
EOF
