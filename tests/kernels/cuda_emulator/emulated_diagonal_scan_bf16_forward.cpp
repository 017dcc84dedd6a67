// src/kernels/cuda/diagonal_scan_bf16_forward.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/diagonal_scan_bf16_forward.cu"
