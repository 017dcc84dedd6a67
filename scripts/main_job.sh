#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: set up, build, and run what the
# project can do today. Until in-training compression lands (issue 4) that is
# the control-theory core: the HSVs and balanced truncation of an LRU layer
# from the official code's golden set, then one in-training-sized reduction
# (6 blocks, N=384, H=512 -> 93) timed against a numpy implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${BUILD_DIR:-build}"
SYSTEM="${SYSTEM:-examples/lru_layer_n32_h8.json}"
OUT_DIR="${OUT_DIR:-runs/main_job}"
mkdir -p "$OUT_DIR"

echo "== Hankel singular values of $SYSTEM"
"$BUILD_DIR/compressm" hsv --system "$SYSTEM"
echo
echo "== Balanced truncation keeping 90% of the HSV energy"
"$BUILD_DIR/compressm" reduce --system "$SYSTEM" --tol 0.9 --out "$OUT_DIR/reduced.json"
echo
echo "== One in-training reduction of the sCIFAR shape (bench/run_reduction_bench.sh)"
bash bench/run_reduction_bench.sh "$BUILD_DIR"
