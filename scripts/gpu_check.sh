#!/usr/bin/env bash
# The GPU check (docs/gpu.md): builds the LibTorch/CUDA subset of compressm with
# the Python wheel's LibTorch, runs the CUDA parity tests and the training-step
# benchmark for the sMNIST and sCIFAR configurations, and writes everything to
# $OUT (logs, gtest JSON, bench JSON lines, summary.txt).
#
# The device machine has CUDA, nvcc, cmake and Python torch but no distribution
# packages, so the header-only dependencies (Eigen, nlohmann/json) and the
# GoogleTest sources travel with the checkout in build-gpu-deps/ (ignored by
# git), made on a machine that has them:
#
#   bash scripts/gpu_check.sh --prepare            # here: copy the deps into build-gpu-deps/
#   OUT=/some/dir bash scripts/gpu_check.sh        # on the device (carry build-gpu-deps)
#   GPU_CHECK_CPU=1 OUT=/tmp/gc bash scripts/gpu_check.sh   # dry run with a CPU LibTorch
#
# GPU_CHECK_CPU=1 uses the LibTorch CMake finds by default, CUDA AUTO (off for
# a CPU LibTorch), one build job and a tiny CPU benchmark: everything but the
# CUDA compile and the device runs. JOBS, BUILD_DIR, STEPS override defaults.
set -uo pipefail

cd "$(dirname "$0")/.."
DEPS=build-gpu-deps

if [[ "${1:-}" == "--prepare" ]]; then
  # Header-only libraries, GoogleTest's sources, Debian's static yaml-cpp and
  # zlib (C++11 ABI, position-independent) with small CMake package files of
  # our own, and the data the device runs read.
  rm -rf "$DEPS" && mkdir -p "$DEPS/include" "$DEPS/lib" "$DEPS/cmake/yaml-cpp" "$DEPS/cmake/CLI11" \
    "$DEPS/data/fashion-mnist" "$DEPS/data/digits"
  cp -r /usr/include/eigen3 "$DEPS/include/eigen3"
  cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/yaml-cpp /usr/include/zlib.h /usr/include/zconf.h \
    "$DEPS/include/"
  cp /usr/lib/x86_64-linux-gnu/libyaml-cpp.a /usr/lib/x86_64-linux-gnu/libz.a "$DEPS/lib/"
  cp -r /usr/src/googletest "$DEPS/googletest"
  cat >"$DEPS/cmake/yaml-cpp/yaml-cpp-config.cmake" <<'CMAKE'
# yaml-cpp as a static library carried in build-gpu-deps (scripts/gpu_check.sh).
get_filename_component(_deps "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp STATIC IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES IMPORTED_LOCATION "${_deps}/lib/libyaml-cpp.a"
                                            INTERFACE_INCLUDE_DIRECTORIES "${_deps}/include")
endif()
set(yaml-cpp_FOUND TRUE)
CMAKE
  cat >"$DEPS/cmake/CLI11/CLI11Config.cmake" <<'CMAKE'
# CLI11 (header-only) carried in build-gpu-deps (scripts/gpu_check.sh).
get_filename_component(_deps "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET CLI11::CLI11)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_deps}/include")
endif()
set(CLI11_FOUND TRUE)
CMAKE
  cp /usr/share/datasets/fashion-mnist/*.gz "$DEPS/data/fashion-mnist/"
  cp /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz "$DEPS/data/digits/"
  du -sh "$DEPS"
  exit 0
fi


: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
CPU_ONLY=${GPU_CHECK_CPU:-0}
BUILD=${BUILD_DIR:-build-gpu-check}
JOBS=${JOBS:-$([[ $CPU_ONLY == 1 ]] && echo 2 || nproc)}
WORK=$OUT/work   # logs, gtest JSON and runs; packed into $OUT/logs.tar.gz at the end
mkdir -p "$WORK"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
pack() { tar -C "$OUT" -czf "$OUT/logs.tar.gz" work 2>/dev/null && rm -rf "$WORK"; }
trap pack EXIT

for needed in "$DEPS/include/eigen3/Eigen/Core" "$DEPS/include/yaml-cpp/yaml.h" "$DEPS/lib/libyaml-cpp.a" \
  "$DEPS/googletest/CMakeLists.txt" "$DEPS/data/digits/digits.csv.gz"; do
  [[ -e $needed ]] || { note "missing $needed: run 'bash scripts/gpu_check.sh --prepare' where the packages are"; exit 2; }
done

{
  date -u
  uname -a
  nvidia-smi 2>&1 || true
  nvcc --version 2>&1 || true
  cmake --version 2>&1 | head -1
  c++ --version 2>&1 | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 || true
  command -v ninja || echo "no ninja"
} >"$WORK/environment.txt" 2>&1
grep -E "NVIDIA H|Driver Version|^torch" "$WORK/environment.txt" | head -3 >>"$SUMMARY"

# The whole project with the carried dependencies; no OpenBLAS (the Eigen
# reference backend) and no SLICOT (its oracle tests are left out).
cmake_args=(-S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCOMPRESSM_WITH_LAPACK=OFF
            "-DCOMPRESSM_HEADER_DEPS=$PWD/$DEPS/include" "-DCOMPRESSM_GTEST_SOURCE=$PWD/$DEPS/googletest"
            "-Dyaml-cpp_DIR=$PWD/$DEPS/cmake/yaml-cpp" "-DCLI11_DIR=$PWD/$DEPS/cmake/CLI11"
            "-DZLIB_INCLUDE_DIR=$PWD/$DEPS/include" "-DZLIB_LIBRARY=$PWD/$DEPS/lib/libz.a"
            -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST
            -DCOMPRESSM_SLICOT_TESTS=OFF -DCOMPRESSM_GPU_SUBSET=OFF)  # explicit: a reused build dir may have it cached
keep_going=(-k)
if command -v ninja >/dev/null; then cmake_args+=(-G Ninja); keep_going=(-k 0); fi
if [[ $CPU_ONLY == 1 ]]; then
  # Dry run here: the dependency plumbing without LibTorch (fast).
  cmake_args+=(-DCOMPRESSM_WITH_TORCH=OFF)
else
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake_args+=(-DCOMPRESSM_WITH_CUDA=ON "-DCMAKE_PREFIX_PATH=$torch_prefix" "-DCMAKE_CUDA_COMPILER=$nvcc_path"
               -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0)
  # The wheel's libraries (libtorch, libc10_cuda, the nvidia-* wheels) at run time.
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
  # The default data locations (docs/design.md §5) on this throwaway machine.
  mkdir -p /usr/share/datasets/fashion-mnist /usr/lib/python3/dist-packages/sklearn/datasets/data
  cp "$DEPS"/data/fashion-mnist/*.gz /usr/share/datasets/fashion-mnist/
  cp "$DEPS"/data/digits/digits.csv.gz /usr/lib/python3/dist-packages/sklearn/datasets/data/
fi

step() {  # step NAME TIMEOUT_S COMMAND...: runs it, logs to $WORK/NAME.log, notes the outcome
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
  local status=$?
  note "$name: exit $status ($((SECONDS - start)) s)"
  return $status
}

step configure 180 cmake "${cmake_args[@]}" || { tail -n 40 "$WORK/configure.log"; exit 1; }
grep -E "compressm:|Caffe2|CUDA" "$WORK/configure.log" | tee -a "$SUMMARY"

if [[ $CPU_ONLY == 1 ]]; then
  step build 900 cmake --build "$BUILD" --target compressm test_config test_data_readers -j "$JOBS" ||
    { tail -n 60 "$WORK/build.log"; exit 1; }
  step test_config 120 "$BUILD/tests/config/test_config" && step test_data_readers 120 "$BUILD/tests/data_readers/test_data_readers"
  "$BUILD/compressm" config --config configs/scifar.yaml >/dev/null && note "compressm config: ok"
  note "done; results in $OUT"
  exit 0
fi

# The CUDA kernels alone first, so that a compile error is easy to find; then
# everything else with -k 0 (keep going), so one broken target stops nothing else.
step build_cuda_kernels 240 cmake --build "$BUILD" --target compressm_kernels_cuda -j "$JOBS" ||
  tail -n 40 "$WORK/build_cuda_kernels.log"
step build 300 cmake --build "$BUILD" --target compressm bench_train_step bench_block_parts test_cuda_parity test_precision \
  test_lru_layer_function test_fused_ops test_training -j "$JOBS" -- "${keep_going[@]}" || grep -E "error|FAILED" "$WORK/build.log" | head -n 40

export OPENBLAS_NUM_THREADS=1
gtest() {  # gtest NAME BINARY [FILTER]
  local name=$1 binary=$2 filter=${3:-*}
  [[ -x $binary ]] || { note "$name: not built"; return; }
  step "$name" 240 "$binary" "--gtest_filter=$filter" "--gtest_output=json:$WORK/$name.json"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED  \]|^(cpu|reduced)" "$WORK/$name.log" | tail -n 30 >>"$SUMMARY"
}
for binary in "$BUILD/compressm" "$BUILD/tests/nn/test_cuda_parity"; do
  [[ -x $binary ]] && echo "$(basename "$binary"): $(ldd "$binary" | grep -oE 'lib(torch_cuda|c10_cuda)[^ ]*' | sort -u | tr '\n' ' ')" >>"$SUMMARY"
done
gtest test_cuda_parity "$BUILD/tests/nn/test_cuda_parity"
# The fused LRU kernels' time segments (S = 2, 4) are new: if their parity
# fails but never with S = 1 forced (the automatic choice, 0, may pick 2 or
# 4), the rest of this run uses S = 1, so that the timings and the training
# runs still measure working kernels.
if grep -q "time segments [024]" "$WORK/test_cuda_parity.log" 2>/dev/null &&
   ! grep -q "time segments 1" "$WORK/test_cuda_parity.log"; then
  export COMPRESSM_LRU_SEGMENTS=1
  note "time segments failed parity: COMPRESSM_LRU_SEGMENTS=1 for the rest of the run"
fi
# The trainer on the GPU (with an in-training reduction) early, before the
# timings and profiles that a cut run would lose first.
gtest test_training_cuda "$BUILD/tests/training/test_training" 'Trainer.Cuda*'

# Bare training steps: bench_train_step NAME FLAGS... (median ms over the timed steps)
: >"$OUT/bench.jsonl"
run_bench() {
  local name=$1
  shift
  [[ -x $BUILD/bench/bench_train_step ]] || { note "bench_$name: not built"; return; }
  if step "bench_$name" 120 "$BUILD/bench/bench_train_step" "$@"; then
    tail -n 1 "$WORK/bench_$name.log" | sed "s/^{/{\"name\":\"$name\",/" | tee -a "$OUT/bench.jsonl" >>"$SUMMARY"
  fi
}
smnist=(--device cuda --blocks 1 --hidden 8 --batch 50 --length 784 --input 1 --classes 10 --steps 100 --warmup 10)
scifar=(--device cuda --blocks 6 --hidden 512 --batch 50 --length 1024 --input 3 --classes 10 --steps 20 --warmup 5)
for n in 256 47 13; do
  run_bench "smnist_n${n}" "${smnist[@]}" --state $n
  run_bench "smnist_n${n}_graph" "${smnist[@]}" --state $n --graph 1
done
# The fused block ops and AdamW kernel against LibTorch's composition (the
# baseline of the same invocation; the AdamW kernel is in both graphed runs).
run_bench smnist_n256_graph_composed "${smnist[@]}" --state 256 --graph 1 --block-ops composed
# The narrow block's mix stage as the separate fused ops (GELU, GEMM, GLU;
# the mask kernel's masks) instead of narrow_mix, which auto runs.
run_bench smnist_n256_graph_fused "${smnist[@]}" --state 256 --graph 1 --block-ops fused
# Without dropout, as the figures of docs/gpu.md before 2026-11-27 ran
# (bench_train_step's default is now the configs' 0.1).
run_bench smnist_n256_graph_nodrop "${smnist[@]}" --state 256 --graph 1 --dropout 0
# The fused LRU kernels without time segments (the baseline of the automatic
# choice in smnist_n256_graph; kernels/cuda/lru_cuda.h).
run_bench smnist_n256_graph_segments1 "${smnist[@]}" --state 256 --graph 1 --lru-segments 1
# Both passes forced to 2 and to 4 segments (the automatic choice gave the
# forward 4 and the backward 2 on an H200: 4 did not fit its grid in one wave).
run_bench smnist_n256_graph_segments2 "${smnist[@]}" --state 256 --graph 1 --lru-segments 2
run_bench smnist_n256_graph_segments4 "${smnist[@]}" --state 256 --graph 1 --lru-segments 4
# The automatic choice once more: the spread between two identical runs.
run_bench smnist_n256_graph_again "${smnist[@]}" --state 256 --graph 1
# Each step waiting for its loss before the next starts (bench_train_step's
# only mode up to 2026-11-27; the default now queues one step ahead, as the
# trainer does).
run_bench smnist_n256_graph_sync "${smnist[@]}" --state 256 --graph 1 --queue-ahead 0
QUICK=${QUICK:-0}  # 1: sMNIST, one sCIFAR figure and the sFMNIST trainer runs only
if [[ $QUICK != 1 ]]; then
  run_bench scifar_n384 "${scifar[@]}" --state 384
  run_bench scifar_n384_tf32 "${scifar[@]}" --state 384 --precision tf32
  run_bench scifar_n384_bf16 "${scifar[@]}" --state 384 --precision bf16
  run_bench scifar_n93 "${scifar[@]}" --state 93
fi
run_bench scifar_n384_bf16_graph "${scifar[@]}" --state 384 --precision bf16 --graph 1
run_bench scifar_n384_bf16_graph_sync "${scifar[@]}" --state 384 --precision bf16 --graph 1 --queue-ahead 0
# The wide element-wise kernels one element per thread (the baseline of
# their four-wide accesses, kernels::cuda::set_vector_width), and the
# default once more right after it (the spread between runs).
run_bench scifar_n384_bf16_graph_width1 "${scifar[@]}" --state 384 --precision bf16 --graph 1 --vector-width 1
run_bench scifar_n384_bf16_graph_again "${scifar[@]}" --state 384 --precision bf16 --graph 1
run_bench scifar_n384_bf16_graph_composed "${scifar[@]}" --state 384 --precision bf16 --graph 1 --block-ops composed
run_bench scifar_n384_bf16_graph_nodrop "${scifar[@]}" --state 384 --precision bf16 --graph 1 --dropout 0
# The LRU's B and C projections of the wide layers in float32 (TF32 GEMMs
# around the complex64 scan; the baseline of lru_layer_bf16's bfloat16 ones).
run_bench scifar_n384_bf16_graph_lru_fp32 "${scifar[@]}" --state 384 --precision bf16 --graph 1 --wide-lru fp32
run_bench scifar_n93_bf16_graph "${scifar[@]}" --state 93 --precision bf16 --graph 1
# N = 93 with its states unpadded (2N = 186 bfloat16 columns: rows not a
# multiple of 16 bytes for cuBLAS), the baseline of padding them to 96; and
# N = 96 itself.
run_bench scifar_n93_bf16_graph_unpadded "${scifar[@]}" --state 93 --precision bf16 --graph 1 --state-align 1
run_bench scifar_n96_bf16_graph "${scifar[@]}" --state 96 --precision bf16 --graph 1
# One sCIFAR block stage by stage, eager (BatchNorm, the LRU with bfloat16
# and with float32 projections, GELU/GLU/residual, the whole block; forward
# and forward + backward): the breakdown where ncu is missing.
if [[ -x $BUILD/bench/bench_block_parts ]] &&
  step block_parts_scifar 120 "$BUILD/bench/bench_block_parts" --device cuda --precision bf16; then
  tail -n 1 "$WORK/block_parts_scifar.log" | tee -a "$OUT/bench.jsonl" >>"$SUMMARY"
fi

# The whole trainer against `compressm bench` on the same config (both replay
# CUDA graphs: training.cuda_graphs defaults to true): sMNIST's configuration
# on Fashion-MNIST (real data; fp32 and bf16 accuracy; then compressed in
# training), and sCIFAR's on CIFAR-shaped random bytes (CIFAR-10 is not on
# these machines).
CLI=$BUILD/compressm
STEPS=${STEPS:-4000}
if [[ -x $CLI ]]; then
  sfmnist=(--config configs/smnist.yaml --set dataset=sfmnist --set data_dir=/usr/share/datasets/fashion-mnist
           --set device=cuda --set threads=4)
  precisions=(fp32 bf16)
  [[ $QUICK == 1 ]] && precisions=(fp32)
  for precision in "${precisions[@]}"; do
    step "cli_bench_sfmnist_$precision" 120 "$CLI" bench "${sfmnist[@]}" --set training.precision=$precision --steps 200 \
      --warmup 20 && tail -n 1 "$WORK/cli_bench_sfmnist_$precision.log" | tee -a "$OUT/bench.jsonl" >>"$SUMMARY"
    step "train_sfmnist_$precision" 240 "$CLI" train "${sfmnist[@]}" --set training.precision=$precision \
      --set training.num_steps="$STEPS" --set training.eval_steps=$((STEPS / 2)) --set checkpoint_every=0 \
      --out "$WORK/train_sfmnist_$precision" && tail -n 4 "$WORK/train_sfmnist_$precision.log" >>"$SUMMARY"
  done
  # A wide bf16 model (H = 32: bfloat16 LRU projections; on CUDA the block's
  # BatchNorm, LRU, GELU and dropout as one op) on real data, fused against
  # LibTorch's composition; the CPU runs of docs/gpu.md reached 75.7%.
  for ops in auto composed; do
    step "train_sfmnist_wide_bf16_$ops" 180 "$CLI" train "${sfmnist[@]}" --set model.num_blocks=2 \
      --set model.state_dim=64 --set model.hidden_dim=32 --set training.precision=bf16 --set training.block_ops=$ops \
      --set training.num_steps=1500 --set training.eval_steps=1500 --set checkpoint_every=0 \
      --out "$WORK/train_sfmnist_wide_bf16_$ops" && tail -n 2 "$WORK/train_sfmnist_wide_bf16_$ops.log" >>"$SUMMARY"
  done
  step train_sfmnist_tol 240 "$CLI" train "${sfmnist[@]}" --set training.num_steps="$STEPS" \
    --set training.eval_steps=$((STEPS / 2)) --set checkpoint_every=0 --set reduction.mode=tolerance \
    --set reduction.tol=0.99 --set reduction.red_end=$((STEPS / 10)) --set reduction.red_interval=50 \
    --out "$WORK/train_sfmnist_tol" && tail -n 5 "$WORK/train_sfmnist_tol.log" >>"$SUMMARY"
  if [[ $QUICK != 1 ]]; then
    python3 - "$WORK/cifar" <<'PY' && note "made CIFAR-shaped random data"
import os, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    records = rng.integers(0, 256, size=(10000, 3073), dtype=np.uint8)
    records[:, 0] = rng.integers(0, 10, size=10000)
    records.tofile(os.path.join(out, name))
PY
    scifar_cfg=(--config configs/scifar.yaml --set data_dir="$WORK/cifar" --set threads=4)
    step cli_bench_scifar_bf16 120 "$CLI" bench "${scifar_cfg[@]}" --steps 20 --warmup 5 &&
      tail -n 1 "$WORK/cli_bench_scifar_bf16.log" | tee -a "$OUT/bench.jsonl" >>"$SUMMARY"
    step train_scifar_bf16 180 "$CLI" train "${scifar_cfg[@]}" --set training.num_steps=300 \
      --set training.eval_steps=300 --set checkpoint_every=0 --out "$WORK/train_scifar_bf16" &&
      tail -n 3 "$WORK/train_scifar_bf16.log" >>"$SUMMARY"
  fi
  rm -rf "$WORK/train_scifar_bf16/final" "$WORK/cifar"
  for run in "$WORK"/train_*/; do [[ -f $run/metrics.json ]] && cp "$run/metrics.json" "$OUT/$(basename "$run").metrics.json"; done
else
  note "compressm: not built"
fi

# Per-kernel GPU time of the graphed step, where Nsight Compute works
# (Firecracker machines; not gVisor): the breakdown the next speed-up should
# start from. Every kernel of a short run is profiled (the three eager
# warm-up steps run the same kernels as the graph; ncu profiles a replay's
# kernel nodes one by one): the per-kernel summary gives invocations and GPU
# time per kernel name; divide by the 6 steps. Each kernel is replayed for
# its metrics, so this takes a minute or two.
# ncu on the PATH, or where CUDA's installers put it.
NCU=$(command -v ncu || true)
for candidate in /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu; do
  [[ -z $NCU && -x $candidate ]] && NCU=$candidate
done
NCU_TIMEOUT=${NCU_TIMEOUT:-180}  # seconds for each profile
note "ncu: ${NCU:-not found}"
if [[ $QUICK != 1 && -x $BUILD/bench/bench_train_step && -n $NCU ]]; then
  step ncu_smnist_n256 "$NCU_TIMEOUT" "$NCU" --metrics gpu__time_duration.sum --print-summary per-kernel \
    --launch-count 3000 "$BUILD/bench/bench_train_step" --device cuda --blocks 1 --hidden 8 --batch 50 \
    --length 784 --input 1 --classes 10 --state 256 --graph 1 --warmup 4 --steps 2 || true
  # One sCIFAR-shaped block (N = 384, H = 512, bf16): where the wide step's
  # time and DRAM bytes go (GEMMs, scan, fused ops, BatchNorm), and for each
  # kernel whether the SMs or memory bound it (percent of peak) and its
  # achieved occupancy. scripts/ncu_table.py tabulates the log.
  step ncu_scifar_1block "$NCU_TIMEOUT" "$NCU" --metrics \
    gpu__time_duration.sum,dram__bytes.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,\
gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active \
    --print-summary per-kernel --launch-count 3000 "$BUILD/bench/bench_train_step" --device cuda --blocks 1 \
    --hidden 512 --batch 50 --length 1024 --input 3 --classes 10 --state 384 --precision bf16 --graph 1 \
    --warmup 4 --steps 2 || true
  # The same block compressed to N = 93 (states padded to 96): which GEMM
  # kernels cuBLAS picks and what the scan takes at a quarter of the states.
  step ncu_scifar_1block_n93 "$NCU_TIMEOUT" "$NCU" --metrics gpu__time_duration.sum,dram__bytes.sum \
    --print-summary per-kernel --launch-count 3000 "$BUILD/bench/bench_train_step" --device cuda --blocks 1 \
    --hidden 512 --batch 50 --length 1024 --input 3 --classes 10 --state 93 --precision bf16 --graph 1 \
    --warmup 4 --steps 2 || true
fi

if [[ $QUICK != 1 ]]; then
  gtest test_precision "$BUILD/tests/nn/test_precision"
  gtest test_lru_layer_function "$BUILD/tests/nn/test_lru_layer_function"
  gtest test_fused_ops "$BUILD/tests/nn/test_fused_ops"
fi
note "done; results in $OUT"
