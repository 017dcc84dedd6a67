// cuda_ops.h in a build without CUDA kernels.
#include <c10/util/Exception.h>

#include "nn/cuda_ops.h"

namespace compressm::nn::cuda_ops {

bool compiled() { return false; }

torch::Tensor diagonal_scan(const torch::Tensor&, const torch::Tensor&) {
  TORCH_CHECK(false, "diagonal_scan: compressm was built without CUDA kernels (COMPRESSM_WITH_CUDA=OFF)");
  return torch::Tensor();
}

torch::Tensor lru_layer_fused(const LruLayerInputs&) {
  TORCH_CHECK(false, "lru_layer: compressm was built without CUDA kernels (COMPRESSM_WITH_CUDA=OFF)");
  return torch::Tensor();
}

}  // namespace compressm::nn::cuda_ops
