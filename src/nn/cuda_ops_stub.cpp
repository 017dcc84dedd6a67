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

namespace {
void no_cuda(const char* op) {
  TORCH_CHECK(false, op, ": compressm was built without CUDA kernels (COMPRESSM_WITH_CUDA=OFF)");
}
}  // namespace

void set_fused_time_segments(int64_t segments) {
  TORCH_CHECK(segments == 0 || segments == 1, "set_fused_time_segments: this build has no CUDA kernels");
}

void set_elementwise_vector_width(int64_t width) {
  TORCH_CHECK(width == 1 || width == 4, "set_elementwise_vector_width: 4 or 1, got ", width);
}

void diagonal_scan_bf16_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                const torch::Tensor&) {
  no_cuda("lru_layer_bf16");
}
void diagonal_scan_bf16_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("lru_layer_bf16");
}
void lru_skip_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("lru_layer_bf16");
}
void lru_skip_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                       const torch::Tensor&, const torch::Tensor&) {
  no_cuda("lru_layer_bf16");
}

void lru_skip_gelu_forward(const torch::Tensor&, const torch::Tensor&, const SkipInput&, const Dropout&,
                           const torch::Tensor&) {
  no_cuda("lru_layer_bf16_gelu_dropout");
}
void lru_skip_gelu_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const SkipInput&,
                            const torch::Tensor&, const Dropout&, const torch::Tensor&, const torch::Tensor&,
                            const torch::Tensor&) {
  no_cuda("lru_layer_bf16_gelu_dropout");
}
void column_moments(const torch::Tensor&, double, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                    const kernels::elementwise::RunningStats&) {
  no_cuda("lru_block_bf16");
}
void batch_norm_cast(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("lru_block_bf16");
}
void batch_norm_backward(const torch::Tensor&, const torch::Tensor&, const SkipInput&, const torch::Tensor&,
                         const torch::Tensor&) {
  no_cuda("lru_block_bf16");
}

void gelu_dropout_forward(const torch::Tensor&, const torch::Tensor&, double, const torch::Tensor&) {
  no_cuda("gelu_dropout");
}
void gelu_dropout_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double,
                           const torch::Tensor&) {
  no_cuda("gelu_dropout");
}
void glu_residual_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const Dropout&,
                          const torch::Tensor&) {
  no_cuda("glu_residual");
}
void glu_residual_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const Dropout&,
                           const torch::Tensor&, const torch::Tensor&) {
  no_cuda("glu_residual");
}
void lru_bf16_pack(const std::vector<torch::Tensor>&, const torch::Tensor&, const torch::Tensor&,
                   const torch::Tensor&) {
  no_cuda("lru_layer_bf16");
}
void lru_bf16_unpack_gradients(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                               const std::vector<torch::Tensor>&) {
  no_cuda("lru_layer_bf16");
}
void lru_parameterize_forward(const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>&) {
  no_cuda("lru_parameterize");
}
void lru_parameterize_backward(const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>&,
                               const std::vector<torch::Tensor>&) {
  no_cuda("lru_parameterize");
}
kernels::cuda::PhiloxSeed generator_philox(const torch::Device&) {
  no_cuda("the CUDA generator's state");
  return {};
}
void draw_keep_mask(const torch::Tensor&, double) { no_cuda("draw_keep_mask"); }
void narrow_mix_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                        const NarrowMixMasks&, const torch::Tensor&) {
  no_cuda("narrow_mix");
}
void narrow_mix_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const NarrowMixMasks&,
                         const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("narrow_mix");
}
void mean_over_time(const torch::Tensor&, const torch::Tensor&) { no_cuda("mean_over_time"); }
void mean_over_time_backward(const torch::Tensor&, const torch::Tensor&) { no_cuda("mean_over_time"); }
void column_sums(const torch::Tensor&, const torch::Tensor&) { no_cuda("column_sums"); }
void narrow_linear_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("linear");
}
void narrow_linear_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_cuda("linear");
}
void cross_entropy_forward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                           const torch::Tensor&) {
  no_cuda("classification_loss");
}
void cross_entropy_backward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                            const torch::Tensor&) {
  no_cuda("classification_loss");
}
void adamw_step(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const std::vector<torch::Tensor>&,
                const std::vector<int64_t>&, const torch::Tensor&, double, double, double) {
  no_cuda("adamw_step");
}

}  // namespace compressm::nn::cuda_ops
