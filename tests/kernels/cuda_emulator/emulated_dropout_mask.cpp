// src/kernels/cuda/dropout_mask.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/dropout_mask.cu"
