// The autograd wrapper shared by the fused LRU layer's CPU and CUDA kernels
// (lru_layer_function.cpp, cuda_ops.cpp): the forward pass keeps only the
// state at each chunk boundary ("checkpoints"), the backward pass recomputes
// from them. Internal to src/nn.
#pragma once

#include <ATen/record_function.h>
#include <torch/autograd.h>

#include "kernels/lru_layer_kernel.h"

namespace compressm::nn::detail {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The tensor list of the op, its saved list and its gradients:
// lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u (all contiguous).
inline kernels::LruShape shape_of(const torch::Tensor& u, const torch::Tensor& lambda) {
  return {u.size(0), u.size(1), lambda.size(0), u.size(2)};
}

template <class T>
kernels::LruWeights<T> weights_of(const tensor_list& t) {
  return {t[0].data_ptr<T>(), t[1].data_ptr<T>(), t[2].data_ptr<T>(), t[3].data_ptr<T>(),
          t[4].data_ptr<T>(), t[5].data_ptr<T>(), t[6].data_ptr<T>()};
}

inline bool any_requires_grad(const tensor_list& t) {
  for (const torch::Tensor& x : t)
    if (x.requires_grad()) return true;
  return false;
}

// Kernels provides, as static functions:
//   int64_t checkpoint_size(const kernels::LruShape&)      elements of the checkpoint tensor
//   torch::Tensor forward(const tensor_list& t, const torch::Tensor& checkpoints)   (undefined: none kept)
//   tensor_list backward(const tensor_list& t, const torch::Tensor& checkpoints, const torch::Tensor& grad_y)
template <class Kernels>
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer<Kernels>> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& lambda_re, const torch::Tensor& lambda_im,
                               const torch::Tensor& B_re, const torch::Tensor& B_im, const torch::Tensor& C_re,
                               const torch::Tensor& C_im, const torch::Tensor& D, const torch::Tensor& u) {
    RECORD_USER_SCOPE("compressm::lru_layer_forward");
    tensor_list saved{lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u};
    torch::Tensor checkpoints = torch::empty({Kernels::checkpoint_size(shape_of(u, lambda_re))}, u.options());
    torch::Tensor y = Kernels::forward(saved, checkpoints);
    saved.push_back(checkpoints);
    ctx->save_for_backward(saved);
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::lru_layer_backward");
    tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor checkpoints = saved.back();
    saved.pop_back();
    return Kernels::backward(saved, checkpoints, grad_outputs[0].contiguous());
  }
};

// y = layer(t): through autograd when a gradient is wanted, else the forward
// kernel alone without checkpoints.
template <class Kernels>
torch::Tensor apply_checkpointed(const tensor_list& t) {
  if (!torch::GradMode::is_enabled() || !any_requires_grad(t)) return Kernels::forward(t, torch::Tensor());
  return CheckpointedLayer<Kernels>::apply(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
}

}  // namespace compressm::nn::detail
