#!/usr/bin/env bash
# One-command GPU check (`make gpu-check`), for the day a CUDA GPU is lent: in under 5 minutes on one
# NVIDIA GPU it measures shader rendering through EGL on the NVIDIA driver, distillation samples/s with
# bf16 + channels_last (+ torch.compile) against float32, and one full-profile student at SCALE=16, and
# prints the figures as docs/BENCHMARKS.md keeps them. Never part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
WORKERS=${WORKERS:-$(( $(nproc) > 8 ? 8 : $(nproc) ))}
SCALE=${SCALE:-16}
STEPS=$((1500 * SCALE))
say() { echo "[gpu-check $(date +%H:%M:%S)] $*"; }

if ! $BIN/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA device visible to torch; make gpu-check needs an NVIDIA GPU" >&2
  exit 2
fi
$BIN/python -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

say "1/4 shaders: 50,000 images at 32 px through EGL ($WORKERS workers)"
t0=$(date +%s.%N)
$BIN/kdgen shaders --n 50000 --out "$WORK/data" --workers "$WORKERS" --no-progress
t1=$(date +%s.%N)
SHADER_RATE=$(python3 -c "print(round(50000 / ($t1 - $t0)))")
GL=$($BIN/python -c "
from kdgen.gl.context import create_context
ctx = create_context()
print(ctx.info['GL_RENDERER'])" 2>/dev/null || echo unknown)

say "2/4 teacher: resnet8 on Fashion-MNIST, 2 epochs"
$BIN/kdtrain teacher --data fashion-mnist --epochs 2 --out "$WORK/teacher" --no-progress --workers "$WORKERS" >/dev/null

say "3/4 distillation levers (cnn-tiny from resnet8, batch 128, paper preset, --match-stats)"
$BIN/python bench/bench_train.py --device cuda --workers "$WORKERS" --threads 2 --steps 60 \
  --teacher "$WORK/teacher/teacher.pt" | tee "$WORK/levers.txt" | grep -E "^lever|distill_samples_per_s"

say "4/4 one full-profile student at SCALE=$SCALE ($STEPS steps of 128, shaders, --match-stats)"
t0=$(date +%s.%N)
$BIN/kdtrain distill --teacher "$WORK/teacher/teacher.pt" --shards "$WORK/data/shaders-0*.tar" --match-stats \
  --steps "$STEPS" --workers "$WORKERS" --compile --out "$WORK/student" --no-progress >/dev/null
t1=$(date +%s.%N)
TOP1=$($BIN/python -c "import json; s = json.load(open('$WORK/student/summary.json')); print(f\"{s['student_top1']:.4f} at {s['samples_per_s']:.0f} samples/s\")")

echo
echo "## GPU check ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "Command: \`make gpu-check\` ($WORKERS loader/render workers)"
echo "| figure | value |"
echo "|---|---|"
echo "| \`kdgen shaders --n 50000\` through EGL ($GL) | $SHADER_RATE images/s |"
grep -E "^lever" "$WORK/levers.txt" | sed -E 's/^lever: ([^ ].*[^ ]) +([0-9].*)$/| distillation, \1 | \2 |/'
echo "| shaders student, SCALE=$SCALE ($STEPS steps), student top-1 | $TOP1 ($(python3 -c "print(round($t1 - $t0))") s) |"
