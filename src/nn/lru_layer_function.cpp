#include "nn/lru_layer_function.h"

#include <ATen/record_function.h>
#include <torch/autograd.h>

#include <atomic>
#include <optional>
#include <utility>

#include "kernels/cuda/lru_cuda.h"
#include "kernels/diagonal_scan_bf16.h"
#include "kernels/fused_ops.h"
#include "kernels/lru_layer_kernel.h"
#include "nn/checkpointed_layer.h"
#include "nn/cuda_ops.h"
#include "nn/diagonal_scan_function.h"
#include "nn/fused_ops.h"
#include "nn/op_dropout.h"

namespace compressm::nn {
namespace {

using detail::shape_of;
using detail::tensor_list;
using detail::weights_of;

// Order of the tensors in the autograd op, its saved list and its gradients.
tensor_list as_list(const LruLayerInputs& in) {
  return {in.lambda_re, in.lambda_im, in.B_re, in.B_im, in.C_re, in.C_im, in.D, in.u};
}

// The CPU kernels (kernels/lru_layer_kernel.h) for detail::CheckpointedLayer.
struct CpuKernels {
  static int64_t checkpoint_size(const kernels::LruShape& shape) { return kernels::lru_checkpoint_size(shape); }

  // y = layer(u); fills `checkpoints` when defined.
  static torch::Tensor forward(const tensor_list& t, const torch::Tensor& checkpoints) {
    const torch::Tensor& u = t[7];
    torch::Tensor y = torch::empty_like(u);
    const kernels::LruShape shape = shape_of(u, t[0]);
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "lru_layer_forward", [&] {
      kernels::lru_layer_forward(weights_of<scalar_t>(t), u.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                                 checkpoints.defined() ? checkpoints.data_ptr<scalar_t>() : nullptr, shape);
    });
    return y;
  }

  static tensor_list backward(const tensor_list& t, const torch::Tensor& checkpoints, const torch::Tensor& grad_y) {
    tensor_list grads;
    for (const torch::Tensor& x : t) grads.push_back(torch::empty_like(x));
    AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "lru_layer_backward", [&] {
      const kernels::LruGradients<scalar_t> g{
          grads[0].data_ptr<scalar_t>(), grads[1].data_ptr<scalar_t>(), grads[2].data_ptr<scalar_t>(),
          grads[3].data_ptr<scalar_t>(), grads[4].data_ptr<scalar_t>(), grads[5].data_ptr<scalar_t>(),
          grads[6].data_ptr<scalar_t>(), grads[7].data_ptr<scalar_t>()};
      kernels::lru_layer_backward(weights_of<scalar_t>(t), t[7].data_ptr<scalar_t>(),
                                  checkpoints.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(), g,
                                  shape_of(t[7], t[0]));
    });
    return grads;
  }
};

// Validation at the boundary; the kernel itself checks nothing.
void check_arguments(const LruLayerInputs& in) {
  const torch::Tensor& u = in.u;
  TORCH_CHECK(u.dim() == 3 && u.size(0) > 0 && u.size(1) > 0 && u.size(2) > 0,
              "lru_layer: u must be a non-empty {B, L, H}, got ", u.sizes());
  TORCH_CHECK(u.scalar_type() == torch::kFloat || u.scalar_type() == torch::kDouble,
              "lru_layer: u must be float32 or float64, got ", u.scalar_type());
  const int64_t n = in.lambda_re.dim() == 1 ? in.lambda_re.size(0) : -1, h = u.size(2);
  TORCH_CHECK(n > 0, "lru_layer: lambda_re must be a non-empty {N}, got ", in.lambda_re.sizes());
  const auto expect = [&](const torch::Tensor& t, c10::IntArrayRef sizes, const char* name) {
    TORCH_CHECK(t.sizes() == sizes, "lru_layer: ", name, " must be ", sizes, ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == u.scalar_type(), "lru_layer: ", name, " must have u's dtype");
    TORCH_CHECK(t.device() == u.device(), "lru_layer: ", name, " must be on u's device");
  };
  expect(in.lambda_re, {n}, "lambda_re");
  expect(in.lambda_im, {n}, "lambda_im");
  expect(in.B_re, {n, h}, "B_re");
  expect(in.B_im, {n, h}, "B_im");
  expect(in.C_re, {h, n}, "C_re");
  expect(in.C_im, {h, n}, "C_im");
  expect(in.D, {h}, "D");
  expect(u, u.sizes(), "u");
}

// lru_layer_bf16: its kernels on the CPU (kernels/) or CUDA (cuda_ops.h).
using cuda_ops::keep_ptr;
const uint16_t* bits(const torch::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<c10::BFloat16>()); }
uint16_t* bits(torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<c10::BFloat16>()); }

// The projections and the scan of the bf16 layer, up to cx = Re(C s) (bfloat16
// {B, L, H}), and the tensors their backward pass needs. Saved in this order
// (save_core), with the layer's state count N: the tensors hold
// padded_states(N) states, the ones past N zero (lambda, B and C), so that
// their states stay zero and add nothing.
struct Bf16Core {
  torch::Tensor lambda, w_in, w_out, ub, bu, checkpoints, x;  // x = bf16(s)
  int64_t states = 0;
};
constexpr size_t kBf16CoreSaved = 7;

// N rounded up to a multiple of 4: Bu and s {B, L, 2N} and W_out {H, 2N} in
// bfloat16 then have rows of a multiple of 16 bytes, as cuBLAS's tensor-core
// GEMM kernels on sm_90 need (their operands' leading dimensions 16-byte
// aligned); a compressed layer's N = 93 (2N = 186) would take its slower
// unaligned kernels for all six GEMMs of the layer.
// (set_bf16_state_alignment may make it 1.)
std::atomic<int64_t>& state_alignment() {
  static std::atomic<int64_t> alignment{4};
  return alignment;
}
int64_t padded_states(int64_t n) {
  const int64_t a = state_alignment().load();
  return (n + a - 1) / a * a;
}

// t: as_list (u unused); ub = bf16(u).
std::pair<Bf16Core, torch::Tensor> bf16_core_forward(const tensor_list& t, const torch::Tensor& ub) {
  const int64_t n = t[0].size(0), h = ub.size(2), padded = padded_states(n);
  Bf16Core c;
  c.states = n;
  // lambda {P, 2}; W_in {2P, H}: rows (re, im) interleaved, so Bu {B, L, 2P}
  // is the scan's complex layout; W_out {H, 2P} = (C_re, -C_im) interleaved;
  // P = padded_states(N), zero past N. One kernel
  // (kernels::elementwise::lru_bf16_pack).
  c.lambda = torch::empty({padded, 2}, t[0].options());
  c.w_in = torch::empty({2 * padded, h}, t[0].options().dtype(torch::kBFloat16));
  c.w_out = torch::empty({h, 2 * padded}, c.w_in.options());
  if (ub.is_cuda())
    cuda_ops::lru_bf16_pack({t[0], t[1], t[2], t[3], t[4], t[5]}, c.lambda, c.w_in, c.w_out);
  else
    kernels::elementwise::lru_bf16_pack(t[0].data_ptr<float>(), t[1].data_ptr<float>(), t[2].data_ptr<float>(),
                                        t[3].data_ptr<float>(), t[4].data_ptr<float>(), t[5].data_ptr<float>(), n,
                                        padded, h, c.lambda.data_ptr<float>(), c.w_in.data_ptr<c10::BFloat16>(),
                                        c.w_out.data_ptr<c10::BFloat16>());
  const kernels::ScanShape shape{ub.size(0), ub.size(1), padded};
  c.ub = ub;
  c.bu = torch::matmul(c.ub, c.w_in.t()).contiguous();
  c.x = torch::empty_like(c.bu);
  c.checkpoints = torch::empty({shape.batch, kernels::bf16_scan_chunks(shape.length), padded, 2}, t[0].options());
  if (ub.is_cuda())
    cuda_ops::diagonal_scan_bf16_forward(c.lambda, c.bu, c.x, c.checkpoints);
  else
    kernels::diagonal_scan_bf16_forward(c.lambda.data_ptr<float>(), bits(c.bu), bits(c.x),
                                        c.checkpoints.data_ptr<float>(), shape);
  torch::Tensor cx = torch::matmul(c.x, c.w_out.t()).contiguous();  // Re(C s), {B, L, H} bfloat16
  return {c, cx};
}

// Saves the core's tensors, then `more` (saved[kBf16CoreSaved] on), and N.
void save_core(torch::autograd::AutogradContext* ctx, const Bf16Core& c, const tensor_list& more) {
  tensor_list saved{c.lambda, c.w_in, c.w_out, c.ub, c.bu, c.checkpoints, c.x};
  saved.insert(saved.end(), more.begin(), more.end());
  ctx->save_for_backward(saved);
  ctx->saved_data["states"] = c.states;
}
Bf16Core core_of(torch::autograd::AutogradContext* ctx, const tensor_list& saved) {
  return {saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], ctx->saved_data["states"].toInt()};
}

// From dL/dcx (bfloat16): the gradients of lambda_re, lambda_im, B_re, B_im,
// C_re, C_im, and the B GEMM's dL/du (bfloat16, {B, L, H}).
// (Padded states' gradients are left out.)
std::pair<tensor_list, torch::Tensor> bf16_core_backward(const Bf16Core& c, const torch::Tensor& grad_cx) {
  const int64_t n = c.states, padded = c.lambda.size(0), h = c.ub.size(2);
  const kernels::ScanShape shape{c.ub.size(0), c.ub.size(1), padded};
  const torch::Tensor grad_x = torch::matmul(grad_cx, c.w_out).contiguous();  // {B, L, 2N} bfloat16
  const torch::Tensor grad_w_out = torch::matmul(grad_cx.reshape({-1, h}).t(), c.x.reshape({-1, 2 * padded}));
  torch::Tensor grad_bu = torch::empty_like(c.bu);
  torch::Tensor rows = torch::empty({shape.batch, padded, 2}, c.checkpoints.options());
  if (c.bu.is_cuda())
    cuda_ops::diagonal_scan_bf16_backward(c.lambda, c.bu, c.checkpoints, grad_x, grad_bu, rows);
  else
    kernels::diagonal_scan_bf16_backward(c.lambda.data_ptr<float>(), bits(c.bu), c.checkpoints.data_ptr<float>(),
                                         bits(grad_x), bits(grad_bu), rows.data_ptr<float>(), shape);
  torch::Tensor grad_ub = torch::matmul(grad_bu, c.w_in).contiguous();  // {B, L, H} bfloat16
  const torch::Tensor grad_w_in =
      torch::matmul(grad_bu.reshape({-1, 2 * padded}).t(), c.ub.reshape({-1, h})).contiguous();
  // The six parameters' gradients in one kernel (lru_bf16_unpack_gradients).
  const torch::TensorOptions f32 = c.lambda.options();
  const tensor_list grads{torch::empty({n}, f32),    torch::empty({n}, f32),    torch::empty({n, h}, f32),
                          torch::empty({n, h}, f32), torch::empty({h, n}, f32), torch::empty({h, n}, f32)};
  const torch::Tensor go = grad_w_out.contiguous();
  if (c.bu.is_cuda())
    cuda_ops::lru_bf16_unpack_gradients(grad_w_in, go, rows, grads);
  else
    kernels::elementwise::lru_bf16_unpack_gradients(
        grad_w_in.data_ptr<c10::BFloat16>(), go.data_ptr<c10::BFloat16>(), rows.data_ptr<float>(), rows.size(0), n,
        padded, h, grads[0].data_ptr<float>(), grads[1].data_ptr<float>(), grads[2].data_ptr<float>(),
        grads[3].data_ptr<float>(), grads[4].data_ptr<float>(), grads[5].data_ptr<float>());
  return {grads, grad_ub};
}

// lru_skip_gelu on either device, u stored or normalised on the fly.
using cuda_ops::norm_input;

// The dropout: a mask, or (CUDA) drawn in the kernels (cuda_ops::Dropout).
void skip_gelu_forward(const torch::Tensor& cx, const torch::Tensor& D, const cuda_ops::SkipInput& u,
                       const cuda_ops::Dropout& dropout, torch::Tensor& g) {
  const int64_t h = u.x.size(2);
  if (u.x.is_cuda())
    cuda_ops::lru_skip_gelu_forward(cx, D, u, dropout, g);
  else
    kernels::elementwise::lru_skip_gelu_forward(cx.data_ptr<c10::BFloat16>(), D.data_ptr<float>(), norm_input(u),
                                                g.data_ptr<c10::BFloat16>(), u.x.numel() / h, h,
                                                keep_ptr(dropout.keep), dropout.scale);
}

// grad_out: the residual's dL/dx where u is normalised (or undefined); sums
// {H} (u stored) or {2H} (normalised): kernels::elementwise::lru_skip_gelu_backward.
void skip_gelu_backward(const torch::Tensor& grad_g, const torch::Tensor& cx, const torch::Tensor& D,
                        const cuda_ops::SkipInput& u, const torch::Tensor& grad_out, const cuda_ops::Dropout& dropout,
                        torch::Tensor& grad_cx, torch::Tensor& grad_skip, torch::Tensor& sums) {
  const int64_t h = u.x.size(2);
  if (u.x.is_cuda())
    cuda_ops::lru_skip_gelu_backward(grad_g, cx, D, u, grad_out, dropout, grad_cx, grad_skip, sums);
  else
    kernels::elementwise::lru_skip_gelu_backward(
        grad_g.data_ptr<c10::BFloat16>(), cx.data_ptr<c10::BFloat16>(), D.data_ptr<float>(), norm_input(u),
        grad_out.defined() ? grad_out.data_ptr<float>() : nullptr, grad_cx.data_ptr<c10::BFloat16>(),
        grad_skip.data_ptr<float>(), sums.data_ptr<float>(), u.x.numel() / h, h, keep_ptr(dropout.keep),
        dropout.scale);
}

// y = float(cx) + D .* u.
struct LruLayerBf16 : public torch::autograd::Function<LruLayerBf16> {
  // t = lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u (as_list).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& lambda_re,
                               const torch::Tensor& lambda_im, const torch::Tensor& B_re, const torch::Tensor& B_im,
                               const torch::Tensor& C_re, const torch::Tensor& C_im, const torch::Tensor& D,
                               const torch::Tensor& u) {
    RECORD_USER_SCOPE("compressm::lru_layer_bf16_forward");
    const auto [core, cx] =
        bf16_core_forward({lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u}, u.to(torch::kBFloat16));
    const int64_t h = u.size(2);
    torch::Tensor y = torch::empty_like(u);
    if (u.is_cuda())
      cuda_ops::lru_skip_forward(cx, D, u, y);
    else
      kernels::elementwise::lru_skip_forward(cx.data_ptr<c10::BFloat16>(), D.data_ptr<float>(), u.data_ptr<float>(),
                                             y.data_ptr<float>(), u.numel() / h, h);
    save_core(ctx, core, {D, u});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::lru_layer_bf16_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &D = saved[kBf16CoreSaved], &u = saved[kBf16CoreSaved + 1];
    const int64_t h = u.size(2);
    const torch::Tensor grad_y = grad_outputs[0].contiguous();
    auto [grads, grad_ub] = bf16_core_backward(core_of(ctx, saved), grad_y.to(torch::kBFloat16));
    torch::Tensor grad_u = torch::empty_like(u), grad_D = torch::empty_like(D);
    if (u.is_cuda())
      cuda_ops::lru_skip_backward(grad_y, u, grad_ub, D, grad_u, grad_D);
    else
      kernels::elementwise::lru_skip_backward(grad_y.data_ptr<float>(), u.data_ptr<float>(),
                                              grad_ub.data_ptr<c10::BFloat16>(), D.data_ptr<float>(),
                                              grad_u.data_ptr<float>(), grad_D.data_ptr<float>(), u.numel() / h, h);
    grads.insert(grads.end(), {grad_D, grad_u});
    return grads;
  }
};

// g = dropout(GELU(float(cx) + D .* u)) in bfloat16: the skip term and the
// block's activation in one pass (y is never written).
struct LruLayerBf16Gelu : public torch::autograd::Function<LruLayerBf16Gelu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& lambda_re,
                               const torch::Tensor& lambda_im, const torch::Tensor& B_re, const torch::Tensor& B_im,
                               const torch::Tensor& C_re, const torch::Tensor& C_im, const torch::Tensor& D,
                               const torch::Tensor& u, const std::optional<torch::Tensor>& mask, double scale) {
    RECORD_USER_SCOPE("compressm::lru_layer_bf16_gelu_forward");
    const auto [core, cx] =
        bf16_core_forward({lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, u}, u.to(torch::kBFloat16));
    const torch::Tensor keep = mask.value_or(torch::Tensor());
    torch::Tensor g = torch::empty_like(cx);
    skip_gelu_forward(cx, D, {u, {}, {}}, cuda_ops::mask_dropout(keep, scale), g);
    save_core(ctx, core, {D, u, cx});
    ctx->saved_data["keep"] = keep;
    ctx->saved_data["scale"] = scale;
    return g;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::lru_layer_bf16_gelu_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &D = saved[kBf16CoreSaved], &u = saved[kBf16CoreSaved + 1], &cx = saved[kBf16CoreSaved + 2];
    const torch::Tensor keep = ctx->saved_data["keep"].toTensor();
    const double scale = ctx->saved_data["scale"].toDouble();
    const torch::Tensor grad_g = grad_outputs[0].to(torch::kBFloat16).contiguous();
    torch::Tensor grad_cx = torch::empty_like(cx), grad_u = torch::empty_like(u), grad_D = torch::empty_like(D);
    skip_gelu_backward(grad_g, cx, D, {u, {}, {}}, torch::Tensor(), cuda_ops::mask_dropout(keep, scale), grad_cx,
                       grad_u, grad_D);
    auto [grads, grad_ub] = bf16_core_backward(core_of(ctx, saved), grad_cx);
    grad_u.add_(grad_ub);  // the skip's share plus the B GEMM's
    grads.insert(grads.end(), {grad_D, grad_u, torch::Tensor(), torch::Tensor()});
    return grads;
  }
};

// The front of a wide bf16 block in training (lru_block_bf16_front): outputs
// g, x itself (so that the residual's gradient of x enters this backward),
// and the batch mean and variance (not differentiable).
struct LruBlockBf16Front : public torch::autograd::Function<LruBlockBf16Front> {
  static tensor_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& lambda_re,
                             const torch::Tensor& lambda_im, const torch::Tensor& B_re, const torch::Tensor& B_im,
                             const torch::Tensor& C_re, const torch::Tensor& C_im, const torch::Tensor& D,
                             const torch::Tensor& x, const std::optional<torch::Tensor>& mask, double p, bool draw,
                             double eps, const std::optional<torch::Tensor>& running_mean,
                             const std::optional<torch::Tensor>& running_var, double momentum) {
    RECORD_USER_SCOPE("compressm::lru_block_bf16_front_forward");
    // Taken first, where the mask kernel ran before this op (the same draws).
    const cuda_ops::Dropout dropout = detail::forward_dropout(mask, p, draw, x.device());
    const int64_t h = x.size(2), rows = x.numel() / h;
    kernels::elementwise::RunningStats running;
    if (running_mean && running_var) {
      running = {running_mean->data_ptr<float>(), running_var->data_ptr<float>(), static_cast<float>(momentum),
                 static_cast<float>(static_cast<double>(rows) / static_cast<double>(rows - 1))};
    }
    torch::Tensor mean = torch::empty({h}, x.options()), var = torch::empty_like(mean),
                  invstd = torch::empty_like(mean);
    torch::Tensor ub = torch::empty(x.sizes(), x.options().dtype(torch::kBFloat16));
    if (x.is_cuda()) {
      cuda_ops::column_moments(x, eps, mean, var, invstd, running);
      cuda_ops::batch_norm_cast(x, mean, invstd, ub);
    } else {
      namespace ew = kernels::elementwise;
      ew::column_moments(x.data_ptr<float>(), rows, h, static_cast<float>(eps), mean.data_ptr<float>(),
                         var.data_ptr<float>(), invstd.data_ptr<float>(), running);
      ew::batch_norm_cast(x.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(),
                          ub.data_ptr<c10::BFloat16>(), rows, h);
    }
    const auto [core, cx] = bf16_core_forward({lambda_re, lambda_im, B_re, B_im, C_re, C_im, D, x}, ub);
    torch::Tensor g = torch::empty_like(cx);
    skip_gelu_forward(cx, D, {x, mean, invstd}, dropout, g);
    save_core(ctx, core, {D, x, cx, mean, invstd});
    detail::save_dropout(ctx, dropout);
    ctx->mark_non_differentiable({mean, var});
    // An unused output (x where the caller adds no residual, g in a test) gets
    // no zero gradient filled in: backward handles undefined ones.
    ctx->set_materialize_grads(false);
    return {g, x, mean, var};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::lru_block_bf16_front_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const size_t k = kBf16CoreSaved;
    const torch::Tensor &D = saved[k], &x = saved[k + 1], &cx = saved[k + 2];
    const cuda_ops::SkipInput u{x, saved[k + 3], saved[k + 4]};
    const cuda_ops::Dropout dropout = detail::saved_dropout(ctx);
    const torch::Tensor grad_g = grad_outputs[0].defined() ? grad_outputs[0].to(torch::kBFloat16).contiguous()
                                                           : torch::zeros_like(cx);
    const torch::Tensor grad_out = grad_outputs[1].defined() ? grad_outputs[1].contiguous() : torch::Tensor();
    // grad_x: the skip's and the residual's shares of dL/dx first (one pass),
    // then batch_norm_backward adds the rest in place; sums: dL/dD, sum of gp.
    torch::Tensor grad_cx = torch::empty_like(cx), grad_x = torch::empty_like(x);
    torch::Tensor sums = torch::empty({2, D.size(0)}, D.options());
    skip_gelu_backward(grad_g, cx, D, u, grad_out, dropout, grad_cx, grad_x, sums);
    auto [grads, grad_ub] = bf16_core_backward(core_of(ctx, saved), grad_cx);
    if (x.is_cuda()) {
      cuda_ops::batch_norm_backward(grad_x, grad_ub, u, D, sums);
    } else {
      const int64_t h = x.size(2);
      kernels::elementwise::batch_norm_backward(grad_x.data_ptr<float>(), grad_ub.data_ptr<c10::BFloat16>(),
                                                norm_input(u), D.data_ptr<float>(), sums.data_ptr<float>(),
                                                x.numel() / h, h);
    }
    const torch::Tensor grad_D = sums[0];
    // No gradient for mask, p, draw, eps, the running statistics, momentum.
    grads.insert(grads.end(), {grad_D, grad_x, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
                               torch::Tensor(), torch::Tensor(), torch::Tensor()});
    return grads;
  }
};

void check_bf16_arguments(const LruLayerInputs& in) {
  check_arguments(in);
  TORCH_CHECK(in.u.scalar_type() == torch::kFloat, "lru_layer_bf16: the tensors must be float32, got ",
              in.u.scalar_type());
  TORCH_CHECK(in.u.device().is_cpu() || in.u.is_cuda(), "lru_layer_bf16: tensors must be on the CPU or a CUDA device");
}

// The inputs of the autograd ops, contiguous, in as_list order.
tensor_list contiguous_list(const LruLayerInputs& in) {
  tensor_list t = as_list(in);
  for (torch::Tensor& x : t) x = x.contiguous();
  return t;
}

// The dropout arguments of the ops with the block's GELU: p in [0, 1); keep a
// uint8 mask of u's shape on u's device, or undefined (none).
std::optional<torch::Tensor> checked_keep_mask(const char* op, const LruLayerInputs& in, const torch::Tensor& keep,
                                               double p) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, op, ": dropout rate must be in [0, 1), got ", p);
  if (!keep.defined()) return std::nullopt;
  TORCH_CHECK(keep.scalar_type() == torch::kByte && keep.sizes() == in.u.sizes() && keep.device() == in.u.device(),
              op, ": keep mask must be uint8 ", in.u.sizes(), " on ", in.u.device());
  return keep.contiguous();
}

}  // namespace

torch::Tensor lru_layer(const LruLayerInputs& in) {
  check_arguments(in);
  const tensor_list t = contiguous_list(in);
  if (in.u.is_cuda()) {
    TORCH_CHECK(in.u.scalar_type() == torch::kFloat, "lru_layer: CUDA tensors must be float32");
    // Wide layers: cuBLAS projections around the CUDA diagonal scan.
    if (in.u.size(2) > kernels::cuda::kFusedMaxHidden) return lru_layer_unfused(in);
    return cuda_ops::lru_layer_fused({t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]});
  }
  TORCH_CHECK(in.u.device().is_cpu(), "lru_layer: tensors must be on the CPU or a CUDA device");
  return detail::apply_checkpointed<CpuKernels>(t);
}

torch::Tensor lru_layer_unfused(const LruLayerInputs& in) {
  check_arguments(in);
  const torch::Tensor& u = in.u;
  const int64_t n = in.lambda_re.size(0), h = u.size(2);
  const torch::Tensor lambda = torch::complex(in.lambda_re, in.lambda_im);
  // Input projection as one real GEMM: W_in {N*2, H} rows (re, im) interleaved,
  // so the output {B, L, N, 2} is a complex {B, L, N} view without a copy.
  const torch::Tensor w_in = torch::stack({in.B_re, in.B_im}, 1).reshape({2 * n, h});
  const torch::Tensor bu =
      torch::view_as_complex(torch::matmul(u, w_in.t()).reshape({u.size(0), u.size(1), n, 2}));
  const torch::Tensor x = diagonal_scan(lambda, bu);
  // Output projection Re(C x) = C_re x_re - C_im x_im, one GEMM on the real view.
  const torch::Tensor w_out = torch::stack({in.C_re, -in.C_im}, 2).reshape({h, 2 * n});
  const torch::Tensor y =
      torch::matmul(torch::view_as_real(x).reshape({u.size(0), u.size(1), 2 * n}), w_out.t());
  return torch::addcmul(y, in.D, u);  // y + D .* u in one pass
}

void set_bf16_state_alignment(int64_t alignment) {
  TORCH_CHECK(alignment == 4 || alignment == 1, "set_bf16_state_alignment: 4 or 1, got ", alignment);
  state_alignment() = alignment;
}
int64_t bf16_state_alignment() { return state_alignment().load(); }

torch::Tensor lru_layer_bf16(const LruLayerInputs& in) {
  check_bf16_arguments(in);
  const tensor_list t = contiguous_list(in);
  return LruLayerBf16::apply(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
}

torch::Tensor lru_layer_bf16_gelu_dropout(const LruLayerInputs& in, const torch::Tensor& keep, double p) {
  check_bf16_arguments(in);
  const std::optional<torch::Tensor> mask = checked_keep_mask("lru_layer_bf16_gelu_dropout", in, keep, p);
  const tensor_list t = contiguous_list(in);
  return LruLayerBf16Gelu::apply(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], mask, 1.0 / (1.0 - p));
}

namespace {
// mask: given (or none); draw: drawn in the CUDA kernels (no mask).
LruBlockFront block_front(const LruLayerInputs& in, const std::optional<torch::Tensor>& mask, double p, bool draw,
                          double eps, const BatchNormRunning& running) {
  TORCH_CHECK(eps > 0.0, "lru_block_bf16_front: eps must be positive, got ", eps);
  TORCH_CHECK(in.u.size(0) * in.u.size(1) > 1, "lru_block_bf16_front: batch statistics need more than one row");
  // The moments count rows in float32: exact below 2^24.
  TORCH_CHECK(in.u.size(0) * in.u.size(1) < (int64_t{1} << 24),
              "lru_block_bf16_front: at most 2^24 - 1 rows (batch x time), got ", in.u.size(0) * in.u.size(1));
  std::optional<torch::Tensor> running_mean, running_var;
  if (running.mean.defined() || running.var.defined()) {
    const int64_t h = in.u.size(2);
    for (const torch::Tensor* r : {&running.mean, &running.var})
      TORCH_CHECK(r->defined() && r->dim() == 1 && r->size(0) == h && r->scalar_type() == torch::kFloat &&
                      r->is_contiguous() && r->device() == in.u.device(),
                  "lru_block_bf16_front: the running mean and variance must be contiguous float32 {", h, "} on ",
                  in.u.device());
    TORCH_CHECK(running.momentum >= 0.0 && running.momentum <= 1.0,
                "lru_block_bf16_front: momentum must be in [0, 1], got ", running.momentum);
    running_mean = running.mean;
    running_var = running.var;
  }
  const tensor_list t = contiguous_list(in);
  const tensor_list out = LruBlockBf16Front::apply(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], mask, p, draw, eps,
                                                   running_mean, running_var, running.momentum);
  return {out[0], out[1], out[2], out[3]};
}
}  // namespace

LruBlockFront lru_block_bf16_front(const LruLayerInputs& in, const torch::Tensor& keep, double p, double eps,
                                   const BatchNormRunning& running) {
  check_bf16_arguments(in);
  return block_front(in, checked_keep_mask("lru_block_bf16_front", in, keep, p), p, false, eps, running);
}

LruBlockFront lru_block_bf16_front_dropout(const LruLayerInputs& in, double p, double eps,
                                           const BatchNormRunning& running) {
  check_bf16_arguments(in);
  TORCH_CHECK(p >= 0.0 && p < 1.0, "lru_block_bf16_front: dropout rate must be in [0, 1), got ", p);
  if (!detail::draws_in_kernels(in.u, p))
    return lru_block_bf16_front(in, detail::mask_drawn_instead(in.u.sizes(), p, in.u.device()), p, eps, running);
  return block_front(in, std::nullopt, p, true, eps, running);
}

torch::Tensor lru_layer_bf16_composed(const LruLayerInputs& in) {
  check_arguments(in);
  const torch::Tensor& u = in.u;
  const int64_t n = in.lambda_re.size(0), h = u.size(2);
  const auto bf16 = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const torch::Tensor w_in = bf16(torch::stack({in.B_re, in.B_im}, 1).reshape({2 * n, h}));
  const torch::Tensor bu = torch::matmul(bf16(u), w_in.t()).to(torch::kFloat);
  const torch::Tensor s = diagonal_scan(torch::complex(in.lambda_re, in.lambda_im),
                                        torch::view_as_complex(bu.reshape({u.size(0), u.size(1), n, 2})));
  const torch::Tensor w_out = bf16(torch::stack({in.C_re, -in.C_im}, 2).reshape({h, 2 * n}));
  const torch::Tensor cx = torch::matmul(bf16(torch::view_as_real(s).reshape({u.size(0), u.size(1), 2 * n})), w_out.t());
  return torch::addcmul(cx.to(torch::kFloat), in.D, u);
}

}  // namespace compressm::nn
