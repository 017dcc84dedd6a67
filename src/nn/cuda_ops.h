// The CUDA paths of the LRU ops: thin torch::autograd::Functions over the
// kernels in src/kernels/cuda (lru_cuda.h). lru_layer() and diagonal_scan()
// (lru_layer_function.h, diagonal_scan_function.h) call these for CUDA tensors
// after validating them; in a build without CUDA (COMPRESSM_WITH_CUDA off)
// each throws a c10::Error saying so.
#pragma once

#include <torch/types.h>

#include "nn/lru_layer_function.h"

namespace compressm::nn::cuda_ops {

// True when this build has the CUDA kernels.
bool compiled();

// diagonal_scan for contiguous complex64 CUDA tensors; differentiable.
torch::Tensor diagonal_scan(const torch::Tensor& lambda, const torch::Tensor& u);

// The fused layer for contiguous float32 CUDA tensors with H <= 16
// (kernels::cuda::kFusedMaxHidden); differentiable; the {B, L, N} state is
// never materialised.
torch::Tensor lru_layer_fused(const LruLayerInputs& in);

}  // namespace compressm::nn::cuda_ops
