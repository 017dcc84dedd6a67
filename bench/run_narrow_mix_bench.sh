#!/usr/bin/env bash
# The narrow block's mix stage as one op (nn::narrow_mix, the CPU default for
# H <= 16) against LibTorch's composition (block_ops composed), alternated in
# one invocation: the sMNIST block's stages (bench_block_parts: N = 256, H = 8,
# B = 50, L = 784, dropout 0.1) and the whole training step of
# configs/smnist.yaml (compressm bench). One thread, one BLAS thread.
#   [ROUNDS=3] [STEPS=40] bash bench/run_narrow_mix_bench.sh [build-dir]
# Last line: JSON with the medians over the rounds (ms) and the ratios composed / narrow.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-40}"
export OPENBLAS_NUM_THREADS=1
uptime
results=()
for ((round = 1; round <= ROUNDS; round++)); do
  for ops in composed auto; do
    parts=$("$BUILD_DIR/bench/bench_block_parts" --device cpu --state 256 --hidden 8 --batch 50 --length 784 \
      --precision fp32 --dropout 0.1 --threads 1 --steps "$STEPS" --block-ops "$ops" 2>/dev/null | tail -n 1)
    step=$("$BUILD_DIR/compressm" bench --config configs/smnist.yaml --steps "$STEPS" --device cpu \
      --set threads=1 --set training.block_ops="$ops" 2>/dev/null | tail -n 1)
    results+=("$ops" "$parts" "$step")
  done
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, statistics, sys
args = sys.argv[1:]
runs = {"composed": [], "auto": []}
for i in range(0, len(args), 3):
    parts, step = json.loads(args[i + 1])["parts"], json.loads(args[i + 2])
    runs[args[i]].append({"mix_forward": parts["mix"]["forward_ms"], "mix_train": parts["mix"]["train_ms"],
                          "block_train": parts["block"]["train_ms"], "step": step["ms_per_step"]})
med = {ops: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for ops, rs in runs.items()}
print(f"{'ms (median of rounds)':24} {'composed':>9} {'narrow_mix':>10} {'ratio':>6}")
for k in med["composed"]:
    print(f"{k:24} {med['composed'][k]:9.2f} {med['auto'][k]:10.2f} {med['composed'][k] / med['auto'][k]:6.2f}")
print(json.dumps({"bench": "narrow_mix", "composed_ms": med["composed"], "narrow_mix_ms": med["auto"],
                  "ratio": {k: med["composed"][k] / med["auto"][k] for k in med["auto"]},
                  "rounds": len(runs["auto"])}))
PY
