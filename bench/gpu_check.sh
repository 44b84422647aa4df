#!/usr/bin/env bash
# One-command GPU check (`make gpu-check`), for the day a CUDA GPU is lent: on one NVIDIA GPU it measures
# `kdgen shaders --n 50000` through EGL on the NVIDIA driver, plain and attacked distillation samples/s
# (the defaults: bf16, channels_last, augmentation on the device), `kdtrain refine` images/s and one
# full-profile student at SCALE=16, and prints the figures as docs/BENCHMARKS.md keeps them, each against
# the target of issue 24 on one H200. Never part of `make test`. About 6 minutes on an H200 at the
# targets' rates; set SCALE=4 (or lower) where device time is short. A rehearsal of the script on a CPU,
# with small sizes: DEVICE=cpu SHADERS_N=2000 STEPS=30 ADV_STEPS=10 REFINE_N=256 BENCH_STEPS=5 \
#   TEACHER_ARGS="--steps 20" BIN=/path/to/venv/bin bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PY="$BIN/python"
WORK=${WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
WORKERS=${WORKERS:-$(( $(nproc) > 8 ? 8 : $(nproc) ))}
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-16}
STEPS=${STEPS:-$((1500 * SCALE))}
SHADERS_N=${SHADERS_N:-50000}
ADV_STEPS=${ADV_STEPS:-2000}
REFINE_N=${REFINE_N:-20000}
BENCH_STEPS=${BENCH_STEPS:-200}
TEACHER_ARGS=${TEACHER_ARGS:---epochs 2}
say() { echo "[gpu-check $(date +%H:%M:%S)] $*"; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
summary() { $PY -c "import json, sys; s = json.load(open(sys.argv[1])); print(s[sys.argv[2]])" "$1" "$2"; }

if [ "$DEVICE" = cuda ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA device visible to torch; make gpu-check needs an NVIDIA GPU" >&2
  exit 2
fi
NAME=$($PY -c "import torch; print(torch.cuda.get_device_name(0) if '$DEVICE' == 'cuda' else 'CPU')")
echo "device: $NAME | torch $($PY -c 'import torch; print(torch.__version__)')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

say "1/6 shaders: $SHADERS_N images at 32 px through EGL ($(nproc) workers)"
t0=$(date +%s.%N)
$PY -m kdgen shaders --n "$SHADERS_N" --out "$WORK/data" --workers "$(nproc)" --no-progress
t1=$(date +%s.%N)
SHADER_S=$(secs "$t0" "$t1")
SHADER_RATE=$(python3 -c "print(round($SHADERS_N / $SHADER_S))")
GL=$($PY -c "
from kdgen.gl.context import create_context
ctx = create_context()
print(ctx.info['GL_RENDERER'])" 2>/dev/null || echo unknown)

say "2/6 teacher: resnet8 on Fashion-MNIST ($TEACHER_ARGS)"
$PY -m kdtrain teacher --data fashion-mnist $TEACHER_ARGS --out "$WORK/teacher" --no-progress \
  --workers "$WORKERS" --device "$DEVICE" >/dev/null
TEACHER="$WORK/teacher/teacher.pt"
SHARDS="$WORK/data/shaders-0*.tar"

say "3/6 attacked distillation: $ADV_STEPS steps of 128, --adv fraction=0.5,every=1"
$PY -m kdtrain distill --teacher "$TEACHER" --shards "$SHARDS" --adv fraction=0.5,every=1 --steps "$ADV_STEPS" \
  --eval none --workers "$WORKERS" --device "$DEVICE" --out "$WORK/adv" --no-progress >/dev/null
ADV_RATE=$(summary "$WORK/adv/summary.json" samples_per_s)

say "4/6 refine: $REFINE_N shader images, the default 20 steps"
$PY -m kdtrain refine --teacher "$TEACHER" --shards "$SHARDS" --n "$REFINE_N" --device "$DEVICE" \
  --out "$WORK/refined/shaders-ref" \
  | tee "$WORK/refine.txt"
REFINE_RATE=$(sed -nE 's/.* refined images, ([0-9.]+) images\/s.*/\1/p' "$WORK/refine.txt" | tail -1)

say "5/6 defaults against --amp off and the augmentation's place (bench/bench_train.py, section 5)"
$PY bench/bench_train.py --device "$DEVICE" --only-defaults --steps "$BENCH_STEPS" --teacher "$TEACHER" --shards "$SHARDS" \
  | tee "$WORK/defaults.txt" | grep -E "^defaults"

say "6/6 one full-profile student ($STEPS steps of 128, plain: the defaults)"
t0=$(date +%s.%N)
$PY -m kdtrain distill --teacher "$TEACHER" --shards "$SHARDS" --steps "$STEPS" --workers "$WORKERS" \
  --device "$DEVICE" --out "$WORK/student" --no-progress >/dev/null
t1=$(date +%s.%N)
PLAIN_RATE=$(summary "$WORK/student/summary.json" samples_per_s)
TOP1=$(summary "$WORK/student/summary.json" student_top1)

echo
echo "## GPU check ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "Command: \`make gpu-check\` ($WORKERS loader workers, $(nproc) render workers); device: $NAME"
echo
echo "| figure | value | target (one H200) |"
echo "|---|---|---|"
echo "| \`kdgen shaders --n $SHADERS_N\` through EGL ($GL) | $SHADER_RATE images/s ($SHADER_S s) | >= 20,000 images/s |"
echo "| distillation, plain (the defaults), $STEPS-step student | $PLAIN_RATE samples/s | >= 50,000 samples/s |"
echo "| distillation, attacked (\`--adv fraction=0.5,every=1\`, $ADV_STEPS steps) | $ADV_RATE samples/s | >= 20,000 samples/s |"
echo "| \`kdtrain refine\`, $REFINE_N images, 20 steps | $REFINE_RATE images/s | >= 5,000 images/s |"
echo "| one student of $STEPS steps of 128 (SCALE=16: 24,000), wall time and student top-1 | $(secs "$t0" "$t1") s, $TOP1 | |"
tail -1 "$WORK/defaults.txt" | $PY -c "
import json, sys
for k, v in json.loads(sys.stdin.read()).items():
    if k.startswith('defaults: '):
        print(f'| bench_train section 5, {k[10:]} | {v} | |')"
