#!/usr/bin/env bash
# The CPU's default block ops (block_ops auto) against LibTorch's composition
# (block_ops composed), alternated in one invocation, one thread, one BLAS
# thread, the configs' dropout 0.1:
#   narrow (H <= 16): the mix stage as one op (nn::narrow_mix) with Philox
#     masks; the sMNIST block's stages (bench_block_parts: N = 256, H = 8,
#     B = 50, L = 784) and the training step of configs/smnist.yaml
#   wide: LibTorch's ops with Philox keep masks for the two dropouts; the
#     training step of that config with 2 blocks, N = 64, H = 32
#   [ROUNDS=3] [STEPS=40] bash bench/run_cpu_block_ops_bench.sh [build-dir]
# Last line: JSON with the medians over the rounds (ms) and the ratios composed / auto.
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
    wide=$("$BUILD_DIR/compressm" bench --config configs/smnist.yaml --steps "$((STEPS / 2))" --device cpu \
      --set threads=1 --set training.block_ops="$ops" --set model.num_blocks=2 --set model.state_dim=64 \
      --set model.hidden_dim=32 2>/dev/null | tail -n 1)
    results+=("$ops" "$parts" "$step" "$wide")
  done
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, statistics, sys
args = sys.argv[1:]
runs = {"composed": [], "auto": []}
for i in range(0, len(args), 4):
    parts, step, wide = json.loads(args[i + 1])["parts"], json.loads(args[i + 2]), json.loads(args[i + 3])
    runs[args[i]].append({"narrow_mix_forward": parts["mix"]["forward_ms"],
                          "narrow_mix_train": parts["mix"]["train_ms"],
                          "narrow_block_train": parts["block"]["train_ms"],
                          "narrow_step": step["ms_per_step"], "wide_step": wide["ms_per_step"]})
med = {ops: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for ops, rs in runs.items()}
print(f"{'ms (median of rounds)':24} {'composed':>9} {'auto':>9} {'ratio':>6}")
for k in med["composed"]:
    print(f"{k:24} {med['composed'][k]:9.2f} {med['auto'][k]:9.2f} {med['composed'][k] / med['auto'][k]:6.2f}")
print(json.dumps({"bench": "cpu_block_ops", "composed_ms": med["composed"], "auto_ms": med["auto"],
                  "ratio": {k: med["composed"][k] / med["auto"][k] for k in med["auto"]},
                  "rounds": len(runs["auto"])}))
PY
