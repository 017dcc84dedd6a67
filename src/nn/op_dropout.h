// The dropout of a fused autograd op (cuda_ops::Dropout: a keep mask, or on
// CUDA masks drawn inside the kernels) from its forward pass to its
// backward pass, through the autograd context. Implemented in fused_ops.cpp.
#pragma once

#include <torch/csrc/autograd/custom_function.h>

#include <optional>

#include "nn/cuda_ops.h"

namespace compressm::nn::detail {

// The forward pass's dropout at rate p: the mask given (none: no dropout),
// or where `draw` (CUDA tensors only) drawn inside the kernels under the
// state cuda_ops::generator_philox takes now from `device`'s generator (new
// counters for each op, as draw_keep_mask's mask would take them; new bits
// on each replay of a CUDA graph).
cuda_ops::Dropout forward_dropout(const std::optional<torch::Tensor>& mask, double p, bool draw,
                                  const torch::Device& device);

// Kept in the context (the mask is not differentiable: no SavedVariable
// needed), and read back in the backward pass.
void save_dropout(torch::autograd::AutogradContext* ctx, const cuda_ops::Dropout& d);
cuda_ops::Dropout saved_dropout(torch::autograd::AutogradContext* ctx);

// Whether an op at rate p on `like`'s device draws its mask inside its CUDA
// kernels: CUDA tensors, a build with the kernels, p > 0. Where it does
// not (the CPU, no dropout), it takes mask_drawn_instead's mask:
// dropout_keep_mask under the scope kKernelDrawnMasksScope, in which
// bench_op_count (which counts a CPU step as the CUDA one) counts no kernel.
constexpr const char* kKernelDrawnMasksScope = "compressm::kernel_drawn_masks";
bool draws_in_kernels(const torch::Tensor& like, double p);
torch::Tensor mask_drawn_instead(c10::IntArrayRef sizes, double p, const torch::Device& device);

}  // namespace compressm::nn::detail
