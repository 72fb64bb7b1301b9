#!/usr/bin/env bash
# The lottery-ticket comparison at the baseline's own budget (Multi30k, 18 epochs, fp32), every arm
# from one baseline per seed, on one CUDA machine without DVC (`tcompress run-stages` runs dvc.yaml's
# commands). Per seed: the baseline (train, evaluate), then side by side the four ticket
# cells (50/80 %, rewound to θ0 or re-initialized at random under the same mask) and plain IMP to
# 50 and 80 % (imp.fraction 0.2063 and 0.4152 of what remains, three rounds).
#
#   DATA=/path/to/multi30k OUT=/tmp/out SEEDS="1234 4321" bash benchmarks/lottery_device.sh
#
# Everything a run measured is packed into $OUT/lottery_device.tgz after each cell finishes, so an
# interrupted run still returns what it finished. EXTRA adds -S overrides after the fixed ones (the
# CPU smoke test in tests/ uses it to shrink the corpus and the budget).
set -uo pipefail
: "${DATA:?DATA: a directory holding the six Multi30k .gz files}"
DATA=$(realpath "$DATA")  # the stages run in copies of the repository, so a relative path would not hold
OUT=${OUT:-/tmp/lottery_out}
SEEDS=${SEEDS:-1234}
EXTRA=${EXTRA:-}
DEVICE=${DEVICE:-cuda}
ROOT=$(pwd)
WORK=${WORK:-/tmp/lottery_work}
RUN="python3 -m tcompress.cli run-stages"  # tcompress from $PYTHONPATH: the copy each stage runs in
FIXED="-S data=multi30k -S multi30k.local_dir=$DATA -S train.precision=fp32 -S lottery.epochs.multi30k=18
       -S lottery.warmup_steps.multi30k=800 -S runtime.device=$DEVICE -S runtime.threads=1
       -S runtime.checkpoint_every=1000"
ARMS="lottery-50-rewind-full lottery-50-random-full lottery-80-rewind-full lottery-80-random-full"
mkdir -p "$OUT" "$WORK/collected"
rm -rf "$WORK"/s* "$WORK"/collected/*
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

copy_tree() {  # src dst, without the repository's history, environments, resume files and cells
  mkdir -p "$2" && tar -C "$1" --exclude=./.git --exclude=./.venv --exclude=./.devdata --exclude=./data/resume \
    --exclude=./data/cells -cf - . | tar -C "$2" -xf -
}

pack() {  # atomically, so the tarball under $OUT is always whole
  local tmp="$OUT/.pack.$BASHPID.tgz"
  (cd "$WORK" && tar czf "$tmp" collected 2>/dev/null; mv "$tmp" "$OUT/lottery_device.tgz")
}

run_arm() {  # seed dir name cell stages...: run in dir, then keep the cell's files under name
  local seed=$1 dir=$2 name=$3 cell=$4 dst="$WORK/collected/seed$1" rc
  shift 4
  (cd "$dir" && PYTHONPATH=$dir $RUN "$@" > "$dst/$name.log" 2>&1); rc=$?
  echo $rc > "$dst/$name.rc"
  cp "$dir/metrics/cells/$cell.json" "$dst/$name.json" 2>/dev/null
  cp "$dir/data/cells/$cell/hyps.txt" "$dst/$name.hyps.txt" 2>/dev/null
  cp "$dir/data/cells/$cell/cell.json" "$dst/$name.cell.json" 2>/dev/null
  log "seed $seed: $name exit $rc"; pack
}

seed_run() {
  local seed=$1 dir="$WORK/s$1" dst="$WORK/collected/seed$1"
  mkdir -p "$dst"
  copy_tree "$ROOT" "$dir"
  cd "$dir" || return 1
  export PYTHONPATH=$dir  # the stage scripts import tcompress from their own copy; nothing is installed
  # shellcheck disable=SC2086
  $RUN $FIXED -S seeds="$seed" -S 'methods=[lottery]' $EXTRA \
      resolve prepare tokenize train evaluate teacher calibrate sensitivity plan > "$dst/baseline.log" 2>&1 \
    || { log "seed $seed: baseline failed"; echo 1 > "$dst/baseline.rc"; pack; return 1; }
  cp metrics/train.json metrics/train_curve.json metrics/baseline.json params.yaml "$dst/"
  cp data/eval/*.txt "$dst/" 2>/dev/null
  log "seed $seed: baseline done"; pack
  for cell in $ARMS; do
    run_arm "$seed" "$dir" "$cell" "$cell" "cell@$cell" &
  done
  for arm in 0.2063:50 0.4152:80; do
    local frac=${arm%:*} pct=${arm#*:}
    copy_tree "$dir" "$WORK/s$seed-imp$pct"
    run_arm "$seed" "$WORK/s$seed-imp$pct" "imp-$pct-full" imp-full \
      -S 'methods=[imp]' -S imp.fraction="$frac" resolve plan cell@imp-full &
  done
  wait
}

nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$WORK/collected/gpu.csv" 2>/dev/null &
GPU_LOG=$!
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
pids=()
for seed in $SEEDS; do seed_run "$seed" & pids+=($!); done
wait "${pids[@]}"  # not the GPU logger, which runs until killed
log "all done"; kill "$GPU_LOG" 2>/dev/null; pack
failed=$(grep -L -x 0 "$WORK"/collected/seed*/*.rc 2>/dev/null)
[ -z "$failed" ] || { echo "failed: $failed"; exit 1; }
