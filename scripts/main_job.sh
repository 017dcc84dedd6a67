#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install, build, then train the
# sMNIST-sized LRU (1 block, N = 256, H = 8) on sequential Fashion-MNIST
# (Debian's dataset-fashion-mnist) twice, side by side on the two cores:
#   compressed  in-training balanced truncation keeping 99% of the Hankel
#               energy (tau = 0.01), tried every STEPS/100 steps during the
#               first 10% of training
#   full        the same model without reduction
# then prints the result table and the path of the HTML report
# (`compressm report`). About 4.5 minutes of training on 2 cores.
#   STEPS=6000 OUT_DIR=runs/main_job-... bash scripts/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${BUILD_DIR:-build}"
STEPS="${STEPS:-6000}"
OUT_DIR="${OUT_DIR:-runs/main_job-$(date +%Y%m%d-%H%M%S)}"  # a new folder: earlier results are kept
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT_DIR"

common=(--config configs/sfmnist_compress.yaml
        --set "training.num_steps=$STEPS" --set "training.eval_steps=$((STEPS / 10))"
        --set "reduction.red_start=0" --set "reduction.red_end=$((STEPS / 10))"
        --set "reduction.red_interval=$((STEPS / 100))" --set threads=1 --set checkpoint_every=$((STEPS / 2)))

echo "== Training on sequential Fashion-MNIST, $STEPS steps: compressed and full side by side"
echo "   (progress of the full run: $OUT_DIR/full.log)"
"$BUILD_DIR/compressm" train "${common[@]}" --set reduction.mode=none --out "$OUT_DIR/full" > "$OUT_DIR/full.log" 2>&1 &
full_pid=$!
"$BUILD_DIR/compressm" train "${common[@]}" --out "$OUT_DIR/compressed" 2>&1 | tee "$OUT_DIR/compressed.log"
wait "$full_pid" || { echo "main job: the full run failed, see $OUT_DIR/full.log" >&2; exit 1; }

echo
echo "== Result"
"$BUILD_DIR/compressm" report "$OUT_DIR/full" "$OUT_DIR/compressed" --out "$OUT_DIR/report"
