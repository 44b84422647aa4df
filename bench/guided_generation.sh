#!/usr/bin/env bash
# Teacher-guided generation against pixel refinement on one teacher of bench/grid.sh (docs/RESULTS.md):
# 2,500 images of one 50,000-image shader pool kept at random, kept by bench/guided_generation.py, and that
# guided set refined with the defaults; one student each (1x, no attack, as the grid's noadv rows).
#
#   R=runs/grid/digits-resnet8 DATA=digits bench/guided_generation.sh
set -euo pipefail
BIN=${BIN:-.venv/bin}
R=${R:-runs/grid/fashion-mnist-resnet8}
DATA=${DATA:-fashion-mnist}
N=${N:-2500}
POOL=${POOL:-data/guided/pool}
D=$R/guided
T=$R/teacher/teacher.pt
run() { echo "+ $*"; "$@"; }

[ -f "$POOL/shaders-manifest.json" ] && grep -q '"complete": true' "$POOL/shaders-manifest.json" || \
  run "$BIN/kdgen" shaders --n 50000 --size 28 --seed 1 --out "$POOL" --workers 2 --quiet
for kind in random guided; do
  flag=(); [ $kind = random ] && flag=(--random)
  [ -f "$D/data/$kind-guided.json" ] || run "$BIN/python" bench/guided_generation.py --teacher "$T" \
    --pool "$POOL/shaders-0*.tar" --n "$N" --out "$D/data/$kind" "${flag[@]}"
done
[ -f "$D/data/guided_ref-manifest.json" ] && grep -q '"complete": true' "$D/data/guided_ref-manifest.json" || \
  run "$BIN/kdtrain" refine --teacher "$T" --shards "$D/data/guided-0*.tar" --out "$D/data/guided_ref" --no-progress
for set in random guided guided_ref; do
  [ -f "$D/$set/summary.json" ] || run "$BIN/kdtrain" distill --teacher "$T" --eval "$DATA" \
    --shards "$D/data/$set-0*.tar" --steps 1500 --samples-per-epoch 19200 --no-progress --no-tensorboard \
    --out "$D/$set" --resume
done
for set in random guided guided_ref; do
  echo "$set: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['student_top1'])" "$D/$set/summary.json")"
done
