// src/kernels/cuda/lru_layer_forward_f32.cu compiled for the CPU emulator (cuda_emulator.h).
#include "kernels/cuda/lru_layer_forward_f32.cu"
