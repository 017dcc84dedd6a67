#!/usr/bin/env bash
# The in-training compression experiment of docs/compression.md on sequential
# Fashion-MNIST (the sMNIST model: 1 block, N = 256, H = 8), per seed:
#   none     no reduction
#   tol      tolerance reduction keeping 99% of the HSV energy (tau = 0.01),
#            tried every STEPS/100 steps during the first 10% of training,
#            optimiser state reset (the default)
#   slice    the same with reduction.optimizer_state=slice
#   scratch  no reduction, trained from scratch at the tol run's final N
# Two runs at a time, one thread each (2 cores). Finished runs are kept, so
# the script can be re-run after an interruption. Then `compressm report`.
#   STEPS=5000 SEEDS="0 1 2" OUT=runs/sfmnist scripts/experiment_sfmnist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS="${STEPS:-5000}"
SEEDS="${SEEDS:-0 1 2}"
OUT="${OUT:-runs/sfmnist}"
BIN="${BIN:-build/compressm}"
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"

common=(--config configs/sfmnist_compress.yaml
        --set "training.num_steps=$STEPS" --set "training.eval_steps=$((STEPS / 10))"
        --set "reduction.red_start=0" --set "reduction.red_end=$((STEPS / 10))"
        --set "reduction.red_interval=$((STEPS / 100))" --set threads=1 --set checkpoint_every=0)

run() {
  local name="$1"
  shift
  if [ -f "$OUT/$name/metrics.json" ]; then return; fi
  rm -rf "${OUT:?}/$name"
  echo "$(date +%T) start $name" >&2
  "$BIN" train "${common[@]}" "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$(date +%T) done  $name" >&2
}

final_dim() {  # final N of a run (one block)
  sed -n 's/.*"final_state_dims": \[ *\([0-9]*\).*/\1/p' <(tr -d '\n' < "$1/metrics.json")
}

for seed in $SEEDS; do
  run "tol_seed$seed" --set "seed=$seed" &
  run "none_seed$seed" --set "seed=$seed" --set reduction.mode=none &
  wait
done
for seed in $SEEDS; do
  n="$(final_dim "$OUT/tol_seed$seed")"
  run "scratch_seed$seed" --set "seed=$seed" --set reduction.mode=none --set "model.state_dim=$n" &
  run "slice_seed$seed" --set "seed=$seed" --set reduction.optimizer_state=slice &
  wait
done

runs=()
for group in none tol slice scratch; do
  for seed in $SEEDS; do runs+=("$OUT/${group}_seed$seed"); done
done
"$BIN" report "${runs[@]}" --out "$OUT/report"
