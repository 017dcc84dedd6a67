#!/usr/bin/env bash
# One in-training reduction of the sCIFAR shape (6 blocks, N=384, H=512 -> 93),
# compressm against the numpy baseline, in the same invocation and environment.
#   bash bench/run_reduction_bench.sh [build-dir]
# numpy runs on the same OpenBLAS with the same kernel set as compressm (which
# switches OpenBLAS 0.3.21 from its Prescott fallback on CPUs it does not
# know; see src/linalg/blas_runtime.cpp), so the comparison is of the method.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
ARGS=(--blocks 6 --state 384 --hidden 512 --rank 93 --repeats 5)
ours=$("$BUILD_DIR/bench/bench_reduction" "${ARGS[@]}" | tail -n 1)
reference=$("$BUILD_DIR/bench/bench_reduction" "${ARGS[@]}" --backend reference --repeats 1 | tail -n 1)
kernels=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["blas_kernels"])' "$ours")
coretype="${OPENBLAS_CORETYPE:-$kernels}"  # empty: leave OpenBLAS to choose for numpy too
numpy=$(${coretype:+env OPENBLAS_CORETYPE="$coretype"} /usr/bin/python3 bench/numpy_reduction.py "${ARGS[@]}" | tail -n 1)
/usr/bin/python3 - "$ours" "$reference" "$numpy" <<'PY'
import json, sys
ours, ref, numpy = (json.loads(a) for a in sys.argv[1:])
o, s, r, n = ours["wall_ms_median"], ours["sequential_wall_ms_median"], ref["wall_ms_median"], numpy["wall_ms_median"]
print(f"BLAS kernels: {ours['blas_kernels']} ({ours['blas_kernels_how']})")
print(f"compressm, {ours['jobs']} blocks at a time:  {o:8.1f} ms   (stages: " +
      ", ".join(f"{k} {v:.0f}" for k, v in ours["stage_ms"].items()) + ")")
print(f"compressm, blocks in turn:      {s:8.1f} ms   {s / o:5.2f}x the concurrent time")
print(f"compressm, Eigen reference:     {r:8.1f} ms   {r / o:5.1f}x")
print(f"numpy baseline (same kernels):  {n:8.1f} ms   compressm is {n / o:4.1f}x faster")
print(json.dumps({"compressm_ms": o, "compressm_sequential_ms": s, "eigen_reference_ms": r,
                  "numpy_ms": n, "speedup_vs_numpy": n / o, "blas_kernels": ours["blas_kernels"],
                  "target_ms": 300, "meets_target": o < 300}))
PY
