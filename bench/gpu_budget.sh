#!/usr/bin/env bash
# The budget curve's long runs on one CUDA GPU, all at once: refined surrogate sets and the original
# data distilled for 4x and 16x the full profile's 1,500 steps, each process with its own loader workers
# (the augmentation runs in the workers, so CPU cores, not the GPU, set the pace). Every run checkpoints
# each 30 s and is resumable: one stopped at DEADLINE_S continues with the same command (printed in its
# config.yaml) plus --resume, here or on any machine, as long as --workers stays the same.
#
#   bench/gpu_budget.sh OUT [DEADLINE_S]     (needs data/full/*_ref shards and runs/full/teacher from `make refined`)
#
# Also times `kdgen shaders` through EGL on the GPU's driver first, when moderngl is importable.
# RUNS picks runs by name (default: all below; on 16 cores give the attacked ones a call of their own: their
# main process, not the GPU, sets their pace); SCALE_STEPS=N divides every run's steps (a smoke test);
# EXTRA_FLAGS are added to every run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/gpu_budget.sh OUT [DEADLINE_S]}
DEADLINE_S=${2:-480}
PY=${PY:-python3}
mkdir -p "$OUT"
T0=$(date +%s)
say() { echo "[gpu-budget +$(( $(date +%s) - T0 ))s] $*"; }
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
echo "cores: $(nproc)"

if [ -z "${SKIP_SHADERS:-}" ] && $PY -c "import moderngl" 2>/dev/null; then
  say "shaders: 20,000 images at 32 px through EGL, $(nproc) workers"
  t0=$(date +%s.%N)
  if timeout 120 $PY -m kdgen shaders --n 20000 --out /tmp/gpu_budget_shaders --workers "$(nproc)" --no-progress; then
    t1=$(date +%s.%N)
    say "shaders: $($PY -c "print(round(20000 / ($t1 - $t0)))") images/s ($(du -sh /tmp/gpu_budget_shaders | cut -f1))"
  else
    say "shaders: failed or over 120 s"
  fi
  $PY -c "from kdgen.gl.context import create_context; print('GL_RENDERER:', create_context().info['GL_RENDERER'])" || true
fi

# The default recipe (paper-shader, no mixup); the 2026-11-30 runs spelled it out as
# `--preset paper-shader --ra-n 4 --aug-off jitter --no-mixup`, the same augmentation.
P=${EXTRA_FLAGS:-}
X4=$((6000 / ${SCALE_STEPS:-1})); X16=$((24000 / ${SCALE_STEPS:-1}))
declare -A RUN=(
  [x16_shaders_ref_adv]="--steps $X16 --workers 4 --match-stats --shards data/full/shaders_ref-0*.tar --adv fraction=0.5,every=1"
  [x16_leaves_ref]="--steps $X16 --workers 4 --match-stats --shards data/full/leaves_ref-0*.tar"
  [x16_original]="--steps $X16 --workers 3 --data fashion-mnist"
  [x4_shaders_ref_adv]="--steps $X4 --workers 1 --match-stats --shards data/full/shaders_ref-0*.tar --adv fraction=0.5,every=1"
  [x4_leaves_ref]="--steps $X4 --workers 1 --match-stats --shards data/full/leaves_ref-0*.tar"
  [x4_noise_ref]="--steps $X4 --workers 1 --match-stats --shards data/full/noise_ref-0*.tar"
  [x16_noise_ref]="--steps $X16 --workers 4 --match-stats --shards data/full/noise_ref-0*.tar"
  [x4_original]="--steps $X4 --workers 1 --data fashion-mnist"
)
NAMES=${RUNS:-${!RUN[*]}}
set -f  # the shard patterns reach kdtrain unexpanded
for name in $NAMES; do
  mkdir -p "$OUT/$name"
  $PY -m kdtrain distill --teacher runs/full/teacher/teacher.pt ${RUN[$name]} $P --threads 2 --ckpt-minutes 0.5 \
    --no-progress --out "$OUT/$name" --resume >"$OUT/$name/log.txt" 2>&1 &
  PIDS="${PIDS:-} $!"
done
set +f
say "started: $NAMES"
running() { for p in $PIDS; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while [ $(( $(date +%s) - T0 )) -lt "$DEADLINE_S" ] && running; do
  sleep 15
  line=""
  for name in $NAMES; do
    step=$(tail -n 1 "$OUT/$name/metrics.csv" 2>/dev/null | cut -d, -f2)
    line="$line $name:${step:-0}"
  done
  say "$line"
done
if running; then
  say "deadline: stopping the runs still going (resume them with --resume)"
  for p in $PIDS; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
fi
sleep 2
for name in $NAMES; do
  if [ -f "$OUT/$name/summary.json" ]; then
    say "$name done: $($PY -c "import json; s = json.load(open('$OUT/$name/summary.json')); print(s['student_top1'], s['samples_per_s'], 'samples/s', s['wall_s'], 's', s['precision'])")"
  else
    say "$name stopped at step $(tail -n 1 "$OUT/$name/metrics.csv" 2>/dev/null | cut -d, -f2); last lines:"
    tail -n 3 "$OUT/$name/log.txt"
  fi
done
