#!/usr/bin/env bash
# Training steps/s, sMNIST paper configuration (1 block, N=256, H=8, B=50, L=784):
# compressm (C++, fused LRU layer kernel) against PyTorch eager in Python, same process
# environment: threads, BLAS threads, allocator settings.
#   [THREADS=2] [AUTOGROUP_NICE=-15] bash bench/run_train_step_bench.sh [build-dir]
# Both sides use THREADS intra-op threads (default 2). With 2 threads on 2 cores
# any other busy process stalls every parallel region (see docs/performance.md):
# note `uptime` with the figures. The kernel shares the CPUs equally between
# sessions (autogroups) whatever the nice level; as root, AUTOGROUP_NICE raises
# this session's group for the run and restores it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
THREADS="${THREADS:-2}"
if [[ -n "${AUTOGROUP_NICE:-}" ]]; then
  old_nice=$(awk '{print $3}' /proc/self/autogroup)
  echo "$AUTOGROUP_NICE" > /proc/self/autogroup
  trap 'echo "$old_nice" > /proc/self/autogroup' EXIT
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$THREADS"
# The allocator settings the C++ side makes with mallopt(), for Python too.
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1
# No dropout on either side: python_lru_step.py's model has none.
ours=$("$BUILD_DIR/bench/bench_train_step" --threads "$THREADS" --steps 30 --dropout 0 | tail -n 1)
python=$(/usr/bin/python3 bench/python_lru_step.py --threads "$THREADS" --steps 8 | tail -n 1)
/usr/bin/python3 - "$ours" "$python" <<'PY'
import json, sys
o, p = (json.loads(a) for a in sys.argv[1:])
print(f"threads: {o['threads']} (both sides)")
print(f"compressm:            {o['ms_per_step']:8.1f} ms/step  {o['steps_per_s']:6.2f} steps/s")
print(f"PyTorch eager Python: {p['ms_per_step']:8.1f} ms/step  {p['steps_per_s']:6.2f} steps/s")
print(json.dumps({"compressm_steps_per_s": o["steps_per_s"], "python_steps_per_s": p["steps_per_s"],
                  "speedup": p["ms_per_step"] / o["ms_per_step"]}))
PY
