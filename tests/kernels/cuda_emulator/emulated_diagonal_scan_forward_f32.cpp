// src/kernels/cuda/diagonal_scan_forward_f32.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/diagonal_scan_forward_f32.cu"
