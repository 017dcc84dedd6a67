#!/usr/bin/env bash
# What a cut buys in training speed: the sMNIST-shaped training step (1 block,
# H=8, B=50, L=784) at the full N and at a reduced N, alternated in one
# invocation (full, reduced, full, reduced, ...) so that both see the same
# machine load. Prints each run and the median speed-up.
#   [THREADS=1] [ROUNDS=3] bash bench/run_compression_speed.sh [build-dir] [full-N] [reduced-N]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
FULL="${2:-256}"
REDUCED="${3:-97}"
THREADS="${THREADS:-1}"
ROUNDS="${ROUNDS:-3}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$THREADS"
results=()
for ((round = 0; round < ROUNDS; round++)); do
  for n in "$FULL" "$REDUCED"; do
    # --dropout 0: as the figures in docs/performance.md were taken.
    line=$("$BUILD_DIR/bench/bench_train_step" --threads "$THREADS" --state "$n" --steps 40 --dropout 0 | tail -n 1)
    echo "N=$n: $line"
    results+=("$n $line")
  done
done
printf '%s\n' "${results[@]}" | /usr/bin/python3 -c '
import json, statistics, sys
runs = {}
for line in sys.stdin:
    n, doc = line.split(" ", 1)
    runs.setdefault(int(n), []).append(json.loads(doc)["ms_per_step"])
(full, f), (reduced, r) = sorted(runs.items(), reverse=True)
mf, mr = statistics.median(f), statistics.median(r)
print(f"median ms/step: N={full} {mf:.1f}, N={reduced} {mr:.1f}; speed-up {mf / mr:.2f}x")
print(json.dumps({"full_n": full, "reduced_n": reduced, "full_ms": mf, "reduced_ms": mr, "speedup": mf / mr}))'
