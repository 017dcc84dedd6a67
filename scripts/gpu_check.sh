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
  rm -rf "$DEPS" && mkdir -p "$DEPS/include"
  cp -r /usr/include/eigen3 "$DEPS/include/eigen3"
  cp -r /usr/include/nlohmann "$DEPS/include/nlohmann"
  cp -r /usr/src/googletest "$DEPS/googletest"
  du -sh "$DEPS"
  exit 0
fi

: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
CPU_ONLY=${GPU_CHECK_CPU:-0}
BUILD=${BUILD_DIR:-build-gpu-check}
JOBS=${JOBS:-$([[ $CPU_ONLY == 1 ]] && echo 1 || nproc)}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

for needed in "$DEPS/include/eigen3/Eigen/Core" "$DEPS/include/nlohmann/json.hpp" "$DEPS/googletest/CMakeLists.txt"; do
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
} >"$OUT/environment.txt" 2>&1

cmake_args=(-S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCOMPRESSM_GPU_SUBSET=ON -DCOMPRESSM_WITH_LAPACK=OFF
            "-DCOMPRESSM_HEADER_DEPS=$PWD/$DEPS/include" "-DCOMPRESSM_GTEST_SOURCE=$PWD/$DEPS/googletest"
            -DCMAKE_POLICY_VERSION_MINIMUM=3.5)
if command -v ninja >/dev/null; then cmake_args+=(-G Ninja); fi
if [[ $CPU_ONLY == 1 ]]; then
  cmake_args+=(-DCOMPRESSM_WITH_CUDA=AUTO)
else
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake_args+=(-DCOMPRESSM_WITH_CUDA=ON "-DCMAKE_PREFIX_PATH=$torch_prefix" "-DCMAKE_CUDA_COMPILER=$nvcc_path"
               -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0)
  # The wheel's libraries (libtorch, libc10_cuda, the nvidia-* wheels) at run time.
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
fi

step() {  # step NAME TIMEOUT_S COMMAND...: runs it, logs to $OUT/NAME.log, notes the outcome
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local status=$?
  note "$name: exit $status ($((SECONDS - start)) s)"
  return $status
}

step configure 180 cmake "${cmake_args[@]}" || { tail -n 40 "$OUT/configure.log"; exit 1; }
grep -E "compressm:|Caffe2|CUDA" "$OUT/configure.log" | tee -a "$SUMMARY"

# Dry run with nvcc but a CPU LibTorch: compile the kernels alone (no link, no run).
if [[ $CPU_ONLY == 1 ]] && command -v nvcc >/dev/null; then
  for cu in src/kernels/cuda/*.cu; do
    step "nvcc_$(basename "$cu" .cu)" 300 nvcc -std=c++17 -O3 -arch=sm_90 -Xptxas -v -Isrc -c "$cu" \
      -o "$BUILD/$(basename "$cu").o"
  done
fi
# The CUDA kernels alone first, so that a compile error is easy to find.
if grep -q "compressm: CUDA kernels ON" "$OUT/configure.log"; then
  step build_cuda_kernels 300 cmake --build "$BUILD" --target compressm_kernels_cuda -j "$JOBS" ||
    { tail -n 60 "$OUT/build_cuda_kernels.log"; exit 1; }
fi
step build 420 cmake --build "$BUILD" --target test_cuda_parity test_lru_layer_function test_precision \
  bench_train_step -j "$JOBS" || { tail -n 60 "$OUT/build.log"; exit 1; }

export OPENBLAS_NUM_THREADS=1
for test in test_cuda_parity test_precision test_lru_layer_function; do
  step "$test" 300 "$BUILD/tests/nn/$test" "--gtest_output=json:$OUT/$test.json"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[       OK|FAILED|SKIPPED" "$OUT/$test.log" | tail -n 30 >>"$SUMMARY"
done

# name, then bench_train_step flags
run_bench() {
  local name=$1
  shift
  if step "bench_$name" 300 "$BUILD/bench/bench_train_step" "$@"; then
    tail -n 1 "$OUT/bench_$name.log" | tee -a "$OUT/bench.jsonl" >>"$SUMMARY"
  fi
}
smnist=(--blocks 1 --hidden 8 --batch 50 --length 784 --input 1 --classes 10)
scifar=(--blocks 6 --hidden 512 --batch 50 --length 1024 --input 3 --classes 10)
: >"$OUT/bench.jsonl"
if [[ $CPU_ONLY == 1 ]]; then
  run_bench cpu_tiny --device cpu --blocks 1 --state 32 --hidden 8 --batch 4 --length 64 --steps 3 --threads 1
  run_bench cpu_tiny_bf16 --device cpu --blocks 1 --state 32 --hidden 8 --batch 4 --length 64 --steps 3 --threads 1 \
    --precision bf16
else
  steps=${STEPS:-50}
  run_bench smnist_n256 --device cuda "${smnist[@]}" --state 256 --steps "$steps"
  run_bench smnist_n47 --device cuda "${smnist[@]}" --state 47 --steps "$steps"
  run_bench smnist_n13 --device cuda "${smnist[@]}" --state 13 --steps "$steps"
  run_bench scifar_n384 --device cuda "${scifar[@]}" --state 384 --steps 20
  run_bench scifar_n93 --device cuda "${scifar[@]}" --state 93 --steps 20
  run_bench scifar_n384_tf32 --device cuda "${scifar[@]}" --state 384 --steps 20 --precision tf32
  run_bench scifar_n384_bf16 --device cuda "${scifar[@]}" --state 384 --steps 20 --precision bf16
  run_bench smnist_n256_cpu16 --device cpu "${smnist[@]}" --state 256 --steps 10 --threads 16
fi
note "done; results in $OUT"
