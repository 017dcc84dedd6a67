#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and builds the project. Idempotent: a
# second run installs nothing and only rebuilds what changed.
#   bash scripts/setup.sh            # Release build in ./build
#   BUILD_DIR=b bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libeigen3-dev nlohmann-json3-dev libcli11-dev        # core, io, CLI
  libyaml-cpp-dev                                       # config files
  libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev  # BLAS/LAPACK fast path
  libtorch-dev libopenblas0-pthread                     # LibTorch (training engine)
  libgtest-dev libgmock-dev libbenchmark-dev            # tests and benchmarks
  libslicot-dev gfortran                                # SLICOT oracle tests
  python3 python3-numpy python3-scipy python3-mpmath    # oracle and baseline scripts
  python3-torch                                         # PyTorch eager baseline (bench/)
  zlib1g-dev                                            # data readers (gzip)
  dataset-fashion-mnist python3-sklearn                 # real datasets: sfmnist, digits
)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
# Two cores here: -j2 keeps memory in check and the machine responsive.
cmake --build "$BUILD_DIR" -j "${BUILD_JOBS:-2}"
