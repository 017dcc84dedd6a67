// src/kernels/cuda/fused_ops.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/fused_ops.cu"
