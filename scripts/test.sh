#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${BUILD_DIR:-build}"
# One BLAS thread per test process: two test processes share the two cores.
export OPENBLAS_NUM_THREADS=1
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 "$@"
