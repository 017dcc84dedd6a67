#!/usr/bin/env bash
# Streaming runtime vs LibTorch eval-mode forward, sMNIST configuration
# (1 block, H=8, L=784, batch 50): the full model (N=256) and the same model
# balanced-truncated to N=47, both sides in one process, with 2 threads each
# (the runtime: sequences in parallel; LibTorch: intra-op threads), then 1.
#   bash bench/run_runtime_bench.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
export OPENBLAS_NUM_THREADS=1
for threads in 2 1; do
  result=$(OMP_NUM_THREADS=$threads "$BUILD_DIR/bench/bench_runtime_stream" --state 256 --reduced 47 \
             --threads "$threads" --batch 50 --repeats 20 2>/dev/null | tail -n 1)
  /usr/bin/python3 - "$result" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"threads {r['threads']}:")
print(f"{'N':>5} {'step us':>8} {'p99 us':>7} {'runtime seq/s':>14} {'streamed seq/s':>15} "
      f"{'LibTorch seq/s':>15} {'ratio':>6} {'one seq ms: runtime':>20} {'LibTorch':>9}")
for m in r["models"]:
    print(f"{m['state_dim']:>5} {m['runtime_step_us_median']:8.2f} {m['runtime_step_us_p99']:7.2f} "
          f"{m['runtime_seq_per_s']:14.1f} {m['runtime_streamed_seq_per_s']:15.1f} {m['torch_seq_per_s']:15.1f} "
          f"{m['speedup_seq_per_s']:6.2f} {m['runtime_one_seq_ms']:20.3f} {m['torch_one_seq_ms']:9.3f}")
print(json.dumps(r))
PY
done
