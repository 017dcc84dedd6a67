// The CUDA paths of the LRU ops: thin torch::autograd::Functions over the
// kernels in src/kernels/cuda (lru_cuda.h). lru_layer() and diagonal_scan()
// (lru_layer_function.h, diagonal_scan_function.h) call these for CUDA tensors
// after validating them; in a build without CUDA (COMPRESSM_WITH_CUDA off)
// each throws a c10::Error saying so.
#pragma once

#include <torch/types.h>

#include <vector>

#include "kernels/cuda/narrow_mix_cuda.h"
#include "kernels/fused_ops.h"
#include "nn/lru_layer_function.h"

namespace compressm::nn::cuda_ops {

// True when this build has the CUDA kernels.
bool compiled();

// t's data, or null for an empty tensor: how an optional operand that
// autograd's apply cannot take undefined (glu_residual's bias) reaches a kernel.
template <class T>
const T* data_or_null(const torch::Tensor& t) {
  return t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

// A dropout keep mask's data (uint8), or null for an undefined mask (no dropout).
inline const uint8_t* keep_ptr(const torch::Tensor& keep) {
  return keep.defined() ? keep.data_ptr<uint8_t>() : nullptr;
}

// diagonal_scan for contiguous complex64 CUDA tensors; differentiable.
torch::Tensor diagonal_scan(const torch::Tensor& lambda, const torch::Tensor& u);

// The fused layer for contiguous float32 CUDA tensors with H <= 16
// (kernels::cuda::kFusedMaxHidden); differentiable; the {B, L, N} state is
// never materialised.
torch::Tensor lru_layer_fused(const LruLayerInputs& in);
// Its time segments (kernels::cuda::set_fused_time_segments): 0 automatic,
// 1, 2 or 4 forced, process-wide (benchmarks and tests compare). Without
// CUDA: accepts 0 and 1 only (there is nothing to split).
void set_fused_time_segments(int64_t segments);
// The wide element-wise kernels' access width (kernels::cuda::set_vector_width):
// 4 (four elements per thread where aligned, the default) or 1 (one),
// process-wide, for benchmarks that compare. Without CUDA: accepts both and
// does nothing.
void set_elementwise_vector_width(int64_t width);

// The kernels of lru_layer_bf16 on contiguous CUDA tensors, validated by the
// caller: lambda {N, 2} float32; u, x, grad_x, grad_u {B, L, 2N} bfloat16
// (complex pairs); checkpoints {B, ceil(L / 16), N, 2} and rows {B, N, 2}
// float32 (kernels/diagonal_scan_bf16.h). lru_skip: cx and grad_u_gemm
// {B, L, H} bfloat16, the rest float32 (kernels/fused_ops.h).
void diagonal_scan_bf16_forward(const torch::Tensor& lambda, const torch::Tensor& u, const torch::Tensor& x,
                                const torch::Tensor& checkpoints);
void diagonal_scan_bf16_backward(const torch::Tensor& lambda, const torch::Tensor& u, const torch::Tensor& checkpoints,
                                 const torch::Tensor& grad_x, const torch::Tensor& grad_u, const torch::Tensor& rows);
void lru_skip_forward(const torch::Tensor& cx, const torch::Tensor& D, const torch::Tensor& u,
                      const torch::Tensor& out);
void lru_skip_backward(const torch::Tensor& grad_y, const torch::Tensor& u, const torch::Tensor& grad_u_gemm,
                       const torch::Tensor& D, const torch::Tensor& grad_u, const torch::Tensor& grad_D);
// The input u of the skip kernels: u itself (mean and invstd undefined), or
// the block input x with its BatchNorm applied on the fly,
// u = (x - mean) * invstd (mean, invstd {H} float32).
struct SkipInput {
  torch::Tensor x, mean, invstd;
};
// Its pointers for the kernels (CPU loops or CUDA).
inline kernels::elementwise::NormInput norm_input(const SkipInput& u) {
  if (!u.mean.defined()) return {u.x.data_ptr<float>()};
  return {u.x.data_ptr<float>(), u.mean.data_ptr<float>(), u.invstd.data_ptr<float>()};
}
// The dropout of the wide fused ops on CUDA (kernels::cuda::Dropout): a keep
// mask (uint8, or undefined: none) and its scale, or (draw) drawn inside
// the kernels under `philox` at rate p (scale 1 / (1 - p)).
struct Dropout {
  torch::Tensor keep;
  double scale = 1.0;
  bool draw = false;
  kernels::cuda::PhiloxSeed philox;
  double p = 0.0;
};
// A keep mask's dropout (undefined: none).
inline Dropout mask_dropout(const torch::Tensor& keep, double scale) {
  Dropout d;
  d.keep = keep;
  d.scale = scale;
  return d;
}
// lru_skip_gelu: cx, g, grad_g, grad_cx bfloat16; the dropout as above;
// grad_out (u normalised only; or undefined), grad_skip and sums float32, sums
// {H} (u stored: dL/dD) or {2H} (normalised: dL/dD, the sum of gp), as
// kernels::elementwise::lru_skip_gelu_backward.
void lru_skip_gelu_forward(const torch::Tensor& cx, const torch::Tensor& D, const SkipInput& u,
                           const Dropout& dropout, const torch::Tensor& g);
void lru_skip_gelu_backward(const torch::Tensor& grad_g, const torch::Tensor& cx, const torch::Tensor& D,
                            const SkipInput& u, const torch::Tensor& grad_out, const Dropout& dropout,
                            const torch::Tensor& grad_cx, const torch::Tensor& grad_skip, const torch::Tensor& sums);
// The block's BatchNorm (kernels::elementwise::batch_norm) of x {.., H}
// float32: moments into mean, var, invstd {H}; the normalised x as bfloat16
// `out`; dL/dx completed in place over grad_x (lru_skip_gelu_backward's
// grad_skip) from grad_u_gemm (bfloat16), D and that op's sums {2H}, with
// u = {x, mean, invstd}.
void column_moments(const torch::Tensor& x, double eps, const torch::Tensor& mean, const torch::Tensor& var,
                    const torch::Tensor& invstd, const kernels::elementwise::RunningStats& running = {});
void batch_norm_cast(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
                     const torch::Tensor& out);
void batch_norm_backward(const torch::Tensor& grad_x, const torch::Tensor& grad_u_gemm, const SkipInput& u,
                         const torch::Tensor& D, const torch::Tensor& skip_sums);

// The kernels of fused_ops.h and of the graphed step's AdamW
// (kernels/cuda/fused_ops_cuda.h) on contiguous CUDA tensors, validated by the
// caller: float32 y, x and gradients; z, vg and their gradients float32 or
// bfloat16; keep uint8 or undefined; outputs preallocated.
void gelu_dropout_forward(const torch::Tensor& y, const torch::Tensor& keep, double scale, const torch::Tensor& z);
void gelu_dropout_backward(const torch::Tensor& y, const torch::Tensor& grad_z, const torch::Tensor& keep,
                           double scale, const torch::Tensor& grad_y);
// glu_residual: bias {2H} float32, or empty (numel 0) for none; grad_bias
// {2H} float32 (the bias given), or undefined: the bias's gradient, summed
// in the backward kernel. The dropout as lru_skip_gelu's.
void glu_residual_forward(const torch::Tensor& vg, const torch::Tensor& bias, const torch::Tensor& x,
                          const Dropout& dropout, const torch::Tensor& out);
void glu_residual_backward(const torch::Tensor& vg, const torch::Tensor& bias, const torch::Tensor& grad_out,
                           const Dropout& dropout, const torch::Tensor& grad_vg, const torch::Tensor& grad_bias = {});
// lru_parameterize (fused_ops.h) on float32 CUDA tensors: t = {nu_log,
// theta_log, gamma_log, B_re, B_im}, out = {lambda_re, lambda_im, Bt_re,
// Bt_im}; backward: grads of out -> grads of t (preallocated).
void lru_parameterize_forward(const std::vector<torch::Tensor>& t, const std::vector<torch::Tensor>& out);
void lru_parameterize_backward(const std::vector<torch::Tensor>& t, const std::vector<torch::Tensor>& grads,
                               const std::vector<torch::Tensor>& out);
// The wide bf16 layer's GEMM operands (kernels::elementwise::lru_bf16_pack):
// t = {lambda_re, lambda_im, B_re, B_im, C_re, C_im} float32 contiguous
// CUDA tensors into lambda {P, 2} float32, w_in {2P, H} and w_out {H, 2P}
// bfloat16, the N states padded to P = lambda.size(0) with zero states;
// back, from grad_w_in, grad_w_out (bfloat16) and lambda_rows {R, P, 2}
// float32 into grads (six float32 tensors shaped as t).
void lru_bf16_pack(const std::vector<torch::Tensor>& t, const torch::Tensor& lambda, const torch::Tensor& w_in,
                   const torch::Tensor& w_out);
void lru_bf16_unpack_gradients(const torch::Tensor& grad_w_in, const torch::Tensor& grad_w_out,
                               const torch::Tensor& lambda_rows, const std::vector<torch::Tensor>& grads);
// Sums over the rows of a contiguous {.., cols} float32 or bfloat16 tensor
// into out {cols} float32 (kernels::cuda::column_sums; deterministic).
void column_sums(const torch::Tensor& a, const torch::Tensor& out);
// nn::linear's narrow path on CUDA (kernels::cuda::narrow_linear_*): x
// {rows, K} with K <= kernels::cuda::kNarrowLinearInputs, weight {cols, K},
// bias {cols}, out and grad {rows, cols}; float32, contiguous. Backward
// writes grad_weight {cols, K} and grad_bias {cols}.
void narrow_linear_forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                           const torch::Tensor& out);
void narrow_linear_backward(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& grad_weight,
                            const torch::Tensor& grad_bias);
// mean_over_time (fused_ops.h) on CUDA: h {B, L, H} contiguous float32 into
// out {B, H}.
void mean_over_time(const torch::Tensor& h, const torch::Tensor& out);
// Its gradient: out {B, L, H} = grad {B, H} / L (contiguous float32).
void mean_over_time_backward(const torch::Tensor& grad, const torch::Tensor& out);
// narrow_mix (fused_ops.h) on CUDA (kernels/cuda/narrow_mix_cuda.h): y, x,
// out, grad_out, grad_y {rows, H}, weight {2H, H}, bias {2H}, float32
// contiguous; grad_params {2H (H + 1)} = [dL/dW | dL/db]. The masks: given
// (keep_gelu and keep_glu uint8), drawn in the kernels (draw, under
// `philox`), or none.
struct NarrowMixMasks {
  torch::Tensor keep_gelu, keep_glu;
  bool draw = false;
  kernels::cuda::PhiloxSeed philox;
  double p = 0.0;
};
// The state of `device`'s default CUDA generator for one launch's draws
// (taken under its lock; the generator's offset advances by 4): values, or
// device pointers while a CUDA graph is being captured.
kernels::cuda::PhiloxSeed generator_philox(const torch::Device& device);
// Fills keep (uint8, contiguous, on a CUDA device) with a Bernoulli(1 - p)
// keep mask (kernels::cuda::draw_keep_mask) under generator_philox's state.
void draw_keep_mask(const torch::Tensor& keep, double p);
void narrow_mix_forward(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& bias, const NarrowMixMasks& masks, const torch::Tensor& out);
void narrow_mix_backward(const torch::Tensor& y, const torch::Tensor& weight, const torch::Tensor& bias,
                         const NarrowMixMasks& masks, const torch::Tensor& grad_out, const torch::Tensor& grad_y,
                         const torch::Tensor& grad_params);
// classification_loss (fused_ops.h) on CUDA: float32 logits {B, C}, int64
// labels; outputs preallocated (row_lse {B}, loss 0-dim, stats {2} double).
void cross_entropy_forward(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& row_lse,
                           const torch::Tensor& loss, const torch::Tensor& stats);
void cross_entropy_backward(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& row_lse,
                            const torch::Tensor& grad_loss, const torch::Tensor& grad_logits);
// One AdamW step of a bucket (kernels::cuda::adamw_step): flat float32 p, m,
// v; parameter k is elements [starts[k], starts[k + 1]), its gradient
// grads[k] (undefined: none this step, the parameter is left as it is);
// scalars {3} on the device.
void adamw_step(const torch::Tensor& p, const torch::Tensor& m, const torch::Tensor& v,
                const std::vector<torch::Tensor>& grads, const std::vector<int64_t>& starts,
                const torch::Tensor& scalars, double beta1, double beta2, double eps);

}  // namespace compressm::nn::cuda_ops
