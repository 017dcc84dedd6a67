// Stands in for CUDA's header when the kernels compile for the CPU emulator.
#pragma once
#include "../cuda_emulator.h"
