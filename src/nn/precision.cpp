#include "nn/precision.h"

#include <ATen/Context.h>
#include <torch/version.h>
#include <torch/nn/functional/linear.h>

#include "nn/fused_ops.h"

namespace compressm::nn {

std::string_view to_string(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return "fp32";
    case Precision::kTf32: return "tf32";
    case Precision::kBf16: return "bf16";
  }
  return "fp32";
}

torch::Tensor dense(const torch::nn::Linear& layer, const torch::Tensor& x, Precision precision) {
  if (precision != Precision::kBf16) return nn::linear(x, layer->weight, layer->bias);
  return dense_libtorch(layer, x, precision);
}

torch::Tensor dense_libtorch(const torch::nn::Linear& layer, const torch::Tensor& x, Precision precision) {
  if (precision != Precision::kBf16) return torch::nn::functional::linear(x, layer->weight, layer->bias);
  const torch::Tensor bias = layer->bias.defined() ? layer->bias.to(torch::kBFloat16) : torch::Tensor();
  return torch::nn::functional::linear(x.to(torch::kBFloat16), layer->weight.to(torch::kBFloat16), bias)
      .to(torch::kFloat);
}

torch::Tensor dense_pair(const torch::nn::Linear& a, const torch::nn::Linear& b, const torch::Tensor& x,
                         Precision precision) {
  const torch::Tensor weight = torch::cat({a->weight, b->weight}, 0);
  if (precision != Precision::kBf16) return torch::nn::functional::linear(x, weight);
  return torch::nn::functional::linear(x.to(torch::kBFloat16), weight.to(torch::kBFloat16));
}

void require_float32_bf16_reductions() {
#if TORCH_VERSION_MAJOR >= 2
  at::globalContext().setAllowBF16ReductionCuBLAS(false);
#endif
}

void enable_tf32(bool enabled) {
  at::globalContext().setAllowTF32CuBLAS(enabled);
  at::globalContext().setAllowTF32CuDNN(enabled);
}

}  // namespace compressm::nn
