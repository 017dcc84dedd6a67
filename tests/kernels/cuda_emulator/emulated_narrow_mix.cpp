// src/kernels/cuda/narrow_mix.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/narrow_mix.cu"
