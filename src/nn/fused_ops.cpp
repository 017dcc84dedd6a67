#include "nn/fused_ops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/record_function.h>
#include <c10/util/BFloat16.h>
#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <utility>

#include "kernels/cuda/fused_ops_cuda.h"
#include "kernels/fused_ops.h"
#include "kernels/narrow_mix.h"
#include "nn/cuda_ops.h"
#include "nn/op_dropout.h"

namespace compressm::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using cuda_ops::keep_ptr;
using detail::saved_dropout;
using detail::save_dropout;
namespace ew = kernels::elementwise;

// The mask as the ops' argument: autograd's apply takes no undefined tensor.
std::optional<torch::Tensor> optional_mask(const torch::Tensor& keep) {
  if (!keep.defined()) return std::nullopt;
  return keep.contiguous();
}

double scale_of(double p) { return 1.0 / (1.0 - p); }

void check_keep(const char* op, const torch::Tensor& keep, const torch::Tensor& like, double p) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, op, ": dropout rate must be in [0, 1), got ", p);
  if (!keep.defined()) return;
  TORCH_CHECK(keep.scalar_type() == torch::kByte, op, ": keep mask must be uint8, got ", keep.scalar_type());
  TORCH_CHECK(keep.sizes() == like.sizes(), op, ": keep mask must be ", like.sizes(), ", got ", keep.sizes());
  TORCH_CHECK(keep.device() == like.device(), op, ": keep mask must be on ", like.device());
}

// The GEMM-side dtype allowed next to compute dtype `t`: t itself, or
// bfloat16 next to float32.
bool gemm_side_ok(torch::ScalarType side, torch::ScalarType t) {
  return side == t || (side == torch::kBFloat16 && t == torch::kFloat);
}

void check_compute_dtype(const char* op, const torch::Tensor& t) {
  TORCH_CHECK(fused_ops_support(t), op, ": tensors must be float32 (or float64 on the CPU), got ", t.scalar_type(),
              " on ", t.device());
}

// Calls f(Y{}, Z{}) with the CPU storage types of (compute, GEMM side).
template <class F>
void dispatch_cpu(torch::ScalarType compute, torch::ScalarType side, F&& f) {
  if (compute == torch::kDouble) return f(double{}, double{});
  if (side == torch::kBFloat16) return f(float{}, c10::BFloat16{});
  f(float{}, float{});
}

struct GeluDropout : public torch::autograd::Function<GeluDropout> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& y, const std::optional<torch::Tensor>& mask,
                               double scale, torch::ScalarType out_dtype) {
    RECORD_USER_SCOPE("compressm::gelu_dropout_forward");
    const torch::Tensor keep = mask.value_or(torch::Tensor());
    torch::Tensor z = torch::empty(y.sizes(), y.options().dtype(out_dtype));
    if (y.is_cuda()) {
      cuda_ops::gelu_dropout_forward(y, keep, scale, z);
    } else {
      dispatch_cpu(y.scalar_type(), out_dtype, [&](auto yt, auto zt) {
        using Y = decltype(yt);
        using Z = decltype(zt);
        ew::gelu_dropout_forward(y.data_ptr<Y>(), static_cast<Z*>(z.data_ptr()), y.numel(), keep_ptr(keep), scale);
      });
    }
    ctx->save_for_backward({y});
    save_dropout(ctx, cuda_ops::mask_dropout(keep, scale));
    return z;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::gelu_dropout_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor& y = saved[0];
    const cuda_ops::Dropout dropout = saved_dropout(ctx);
    const torch::Tensor grad_z = grads[0].contiguous();
    torch::Tensor grad_y = torch::empty_like(y);
    if (y.is_cuda()) {
      cuda_ops::gelu_dropout_backward(y, grad_z, dropout.keep, dropout.scale, grad_y);
    } else {
      dispatch_cpu(y.scalar_type(), grad_z.scalar_type(), [&](auto yt, auto zt) {
        using Y = decltype(yt);
        using Z = decltype(zt);
        ew::gelu_dropout_backward(y.data_ptr<Y>(), static_cast<const Z*>(grad_z.data_ptr()), grad_y.data_ptr<Y>(),
                                  y.numel(), keep_ptr(dropout.keep), dropout.scale);
      });
    }
    return {grad_y, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// The narrow mix's dropout: given masks (CPU or CUDA), or (CUDA) masks the
// kernels draw under a Philox state taken from LibTorch's CUDA generator at
// the forward pass and kept for the backward pass.
void save_philox(AutogradContext* ctx, const kernels::cuda::PhiloxSeed& s) {
  ctx->saved_data["seed"] = static_cast<int64_t>(s.seed);
  ctx->saved_data["offset"] = static_cast<int64_t>(s.offset);
  ctx->saved_data["seed_ptr"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(s.seed_ptr));
  ctx->saved_data["offset_ptr"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(s.offset_ptr));
  ctx->saved_data["offset_intragraph"] = static_cast<int64_t>(s.offset_intragraph);
}

kernels::cuda::PhiloxSeed saved_philox(AutogradContext* ctx) {
  kernels::cuda::PhiloxSeed s;
  s.seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
  s.offset = static_cast<uint64_t>(ctx->saved_data["offset"].toInt());
  s.seed_ptr = reinterpret_cast<const int64_t*>(static_cast<intptr_t>(ctx->saved_data["seed_ptr"].toInt()));
  s.offset_ptr = reinterpret_cast<const int64_t*>(static_cast<intptr_t>(ctx->saved_data["offset_ptr"].toInt()));
  s.offset_intragraph = static_cast<uint32_t>(ctx->saved_data["offset_intragraph"].toInt());
  return s;
}

struct NarrowMix : public torch::autograd::Function<NarrowMix> {
  // draw (CUDA only): the kernels draw the masks (gelu_mask and glu_mask unset).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& y, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const std::optional<torch::Tensor>& gelu_mask,
                               const std::optional<torch::Tensor>& glu_mask, double p, bool draw) {
    RECORD_USER_SCOPE("compressm::narrow_mix_forward");
    const torch::Tensor keep_gelu = gelu_mask.value_or(torch::Tensor()), keep_glu = glu_mask.value_or(torch::Tensor());
    torch::Tensor out = torch::empty_like(x);
    const int64_t hidden = x.size(-1), rows = x.numel() / hidden;
    if (y.is_cuda()) {
      cuda_ops::NarrowMixMasks masks{keep_gelu, keep_glu, draw, {}, p};
      if (draw) masks.philox = cuda_ops::generator_philox(y.device());
      if (rows > 0) cuda_ops::narrow_mix_forward(y, x, weight, bias, masks, out);
      save_philox(ctx, masks.philox);
    } else {
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "narrow_mix", [&] {
        kernels::narrow_mix::forward(y.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                     {weight.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>()},
                                     {keep_ptr(keep_gelu), keep_ptr(keep_glu), scale_of(p)}, out.data_ptr<scalar_t>(),
                                     rows, hidden);
      });
    }
    ctx->save_for_backward({y, weight, bias});
    ctx->saved_data["keep_gelu"] = keep_gelu;
    ctx->saved_data["keep_glu"] = keep_glu;
    ctx->saved_data["p"] = p;
    ctx->saved_data["draw"] = draw;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::narrow_mix_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &y = saved[0], &weight = saved[1], &bias = saved[2];
    const torch::Tensor keep_gelu = ctx->saved_data["keep_gelu"].toTensor();
    const torch::Tensor keep_glu = ctx->saved_data["keep_glu"].toTensor();
    const double p = ctx->saved_data["p"].toDouble();
    const torch::Tensor grad_out = grads[0].contiguous();
    torch::Tensor grad_y = torch::empty_like(y), grad_weight, grad_bias;
    const int64_t hidden = y.size(-1), rows = y.numel() / hidden;
    if (y.is_cuda()) {
      const cuda_ops::NarrowMixMasks masks{keep_gelu, keep_glu, ctx->saved_data["draw"].toBool(), saved_philox(ctx), p};
      // [dL/dW | dL/db] in one buffer, written by the kernels' sum.
      const torch::Tensor params = rows > 0 ? torch::empty({2 * hidden * (hidden + 1)}, y.options())
                                            : torch::zeros({2 * hidden * (hidden + 1)}, y.options());
      if (rows > 0) cuda_ops::narrow_mix_backward(y, weight, bias, masks, grad_out, grad_y, params);
      grad_weight = params.narrow(0, 0, 2 * hidden * hidden).view(weight.sizes());
      grad_bias = params.narrow(0, 2 * hidden * hidden, 2 * hidden);
    } else {
      grad_weight = torch::empty_like(weight);
      grad_bias = torch::empty_like(bias);
      AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "narrow_mix_backward", [&] {
        kernels::narrow_mix::backward(y.data_ptr<scalar_t>(), {weight.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>()},
                                      {keep_ptr(keep_gelu), keep_ptr(keep_glu), scale_of(p)},
                                      grad_out.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(),
                                      grad_weight.data_ptr<scalar_t>(), grad_bias.data_ptr<scalar_t>(), rows, hidden);
      });
    }
    return {grad_y, grad_out, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

// draw (CUDA only): the kernels draw the mask (mask unset).
struct GluResidual : public torch::autograd::Function<GluResidual> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& vg, const torch::Tensor& bias,
                               const torch::Tensor& x, const std::optional<torch::Tensor>& mask, double p,
                               bool draw) {
    RECORD_USER_SCOPE("compressm::glu_residual_forward");
    const cuda_ops::Dropout dropout = detail::forward_dropout(mask, p, draw, x.device());
    torch::Tensor out = torch::empty_like(x);
    const int64_t hidden = x.size(-1), rows = x.numel() / hidden;
    if (x.is_cuda()) {
      cuda_ops::glu_residual_forward(vg, bias, x, dropout, out);
    } else {
      dispatch_cpu(x.scalar_type(), vg.scalar_type(), [&](auto xt, auto vt) {
        using X = decltype(xt);
        using V = decltype(vt);
        ew::glu_residual_forward(static_cast<const V*>(vg.data_ptr()), x.data_ptr<X>(), out.data_ptr<X>(), rows,
                                 hidden, keep_ptr(dropout.keep), dropout.scale, cuda_ops::data_or_null<X>(bias));
      });
    }
    ctx->save_for_backward({vg, bias});
    save_dropout(ctx, dropout);
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::glu_residual_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &vg = saved[0], &bias = saved[1];
    const cuda_ops::Dropout dropout = saved_dropout(ctx);
    const torch::Tensor grad_out = grads[0].contiguous();
    torch::Tensor grad_vg = torch::empty_like(vg);
    const int64_t hidden = grad_out.size(-1), rows = grad_out.numel() / hidden;
    // The bias's gradient: grad_vg summed over the rows, in x's dtype (on
    // CUDA inside the backward kernel; on the CPU a loop, in row order: no
    // ATen op the CUDA path does not run).
    torch::Tensor grad_bias;
    if (bias.numel() > 0 && ctx->needs_input_grad(1)) grad_bias = torch::empty({2 * hidden}, grad_out.options());
    if (vg.is_cuda()) {
      cuda_ops::glu_residual_backward(vg, bias, grad_out, dropout, grad_vg, grad_bias);
    } else {
      dispatch_cpu(grad_out.scalar_type(), vg.scalar_type(), [&](auto xt, auto vt) {
        using X = decltype(xt);
        using V = decltype(vt);
        ew::glu_residual_backward(static_cast<const V*>(vg.data_ptr()), grad_out.data_ptr<X>(),
                                  static_cast<V*>(grad_vg.data_ptr()), rows, hidden, keep_ptr(dropout.keep),
                                  dropout.scale, cuda_ops::data_or_null<X>(bias));
      });
    }
    if (grad_bias.defined() && !vg.is_cuda()) {
      dispatch_cpu(grad_out.scalar_type(), vg.scalar_type(), [&](auto xt, auto vt) {
        using X = decltype(xt);
        using V = decltype(vt);
        const V* g = static_cast<const V*>(grad_vg.data_ptr());
        X* sum = grad_bias.data_ptr<X>();
        std::fill(sum, sum + 2 * hidden, X(0));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < 2 * hidden; ++j) sum[j] += static_cast<X>(g[r * 2 * hidden + j]);
      });
    }
    return {grad_vg, grad_bias, grad_out, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

template <class T>
ew::LruParameters<T> parameters_of(const tensor_list& t) {
  return {t[0].data_ptr<T>(), t[1].data_ptr<T>(), t[2].data_ptr<T>(), t[3].data_ptr<T>(), t[4].data_ptr<T>()};
}

struct LruParameterize : public torch::autograd::Function<LruParameterize> {
  // nu_log, theta_log, gamma_log, B_re, B_im -> lambda_re, lambda_im, Bt_re, Bt_im
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& nu_log, const torch::Tensor& theta_log,
                             const torch::Tensor& gamma_log, const torch::Tensor& B_re, const torch::Tensor& B_im) {
    RECORD_USER_SCOPE("compressm::lru_parameterize_forward");
    const tensor_list t{nu_log, theta_log, gamma_log, B_re, B_im};
    const int64_t n = B_re.size(0), h = B_re.size(1);
    tensor_list out{torch::empty_like(nu_log), torch::empty_like(nu_log), torch::empty_like(B_re),
                    torch::empty_like(B_im)};
    if (B_re.is_cuda()) {
      cuda_ops::lru_parameterize_forward(t, out);
    } else {
      AT_DISPATCH_FLOATING_TYPES(B_re.scalar_type(), "lru_parameterize", [&] {
        ew::lru_parameterize_forward(parameters_of<scalar_t>(t), n, h, out[0].data_ptr<scalar_t>(),
                                     out[1].data_ptr<scalar_t>(), out[2].data_ptr<scalar_t>(),
                                     out[3].data_ptr<scalar_t>());
      });
    }
    ctx->save_for_backward(t);
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::lru_parameterize_backward");
    const tensor_list t = ctx->get_saved_variables();
    for (torch::Tensor& g : grads) g = g.contiguous();
    tensor_list out;
    for (const torch::Tensor& x : t) out.push_back(torch::empty_like(x));
    if (t[3].is_cuda()) {
      cuda_ops::lru_parameterize_backward(t, grads, out);
    } else {
      AT_DISPATCH_FLOATING_TYPES(t[3].scalar_type(), "lru_parameterize_backward", [&] {
        const ew::LruParameterGradients<scalar_t> g{out[0].data_ptr<scalar_t>(), out[1].data_ptr<scalar_t>(),
                                                    out[2].data_ptr<scalar_t>(), out[3].data_ptr<scalar_t>(),
                                                    out[4].data_ptr<scalar_t>()};
        ew::lru_parameterize_backward(parameters_of<scalar_t>(t), t[3].size(0), t[3].size(1),
                                      grads[0].data_ptr<scalar_t>(), grads[1].data_ptr<scalar_t>(),
                                      grads[2].data_ptr<scalar_t>(), grads[3].data_ptr<scalar_t>(), g);
      });
    }
    return out;
  }
};

struct ClassificationLoss : public torch::autograd::Function<ClassificationLoss> {
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& labels) {
    RECORD_USER_SCOPE("compressm::classification_loss_forward");
    const int64_t batch = logits.size(0), classes = logits.size(1);
    torch::Tensor row_lse = torch::empty({batch}, logits.options());
    torch::Tensor loss = torch::empty({}, logits.options());
    torch::Tensor stats = torch::empty({2}, logits.options().dtype(torch::kDouble));
    if (logits.is_cuda()) {
      cuda_ops::cross_entropy_forward(logits, labels, row_lse, loss, stats);
    } else {
      AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "classification_loss", [&] {
        int64_t correct = 0;
        const scalar_t mean = ew::cross_entropy_forward(logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(),
                                                        batch, classes, row_lse.data_ptr<scalar_t>(), correct);
        *loss.data_ptr<scalar_t>() = mean;
        double* both = stats.data_ptr<double>();
        both[0] = static_cast<double>(mean);
        both[1] = static_cast<double>(correct);
      });
    }
    ctx->mark_non_differentiable({stats});
    ctx->set_materialize_grads(false);  // stats never has a gradient: no zeros made for it
    ctx->save_for_backward({logits, labels, row_lse});
    return {loss, stats};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::classification_loss_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &logits = saved[0], &labels = saved[1], &row_lse = saved[2];
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor()};
    const torch::Tensor grad_loss = grads[0].contiguous();
    torch::Tensor grad_logits = torch::empty_like(logits);
    if (logits.is_cuda()) {
      cuda_ops::cross_entropy_backward(logits, labels, row_lse, grad_loss, grad_logits);
    } else {
      AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "classification_loss_backward", [&] {
        ew::cross_entropy_backward(logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(),
                                   row_lse.data_ptr<scalar_t>(), logits.size(0), logits.size(1),
                                   *grad_loss.data_ptr<scalar_t>(), grad_logits.data_ptr<scalar_t>());
      });
    }
    return {grad_logits, torch::Tensor()};
  }
};

// The pooling on CUDA: forward one kernel for narrow h (H < 32; at sCIFAR's
// {50, 1024, 512} LibTorch's vectorised reduction took 38 us and the kernel
// 60 us, H200, ncu), LibTorch's mean otherwise; backward one kernel
// writing dL/dh = dL/dmean / L (kernels::cuda::mean_over_time_backward).
struct MeanOverTime : public torch::autograd::Function<MeanOverTime> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h) {
    RECORD_USER_SCOPE("compressm::mean_over_time_forward");
    ctx->saved_data["length"] = h.size(1);
    if (h.size(2) >= 32) return h.mean(1);
    torch::Tensor out = torch::empty({h.size(0), h.size(2)}, h.options());
    cuda_ops::mean_over_time(h, out);
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::mean_over_time_backward");
    const int64_t length = ctx->saved_data["length"].toInt();
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor grad_h = torch::empty({g.size(0), length, g.size(1)}, g.options());
    cuda_ops::mean_over_time_backward(g, grad_h);
    return {grad_h};
  }
};

// x W^T + b (x {.., K}, weight {cols, K}, bias {cols}; float32 on CUDA).
// Narrow (K <= kNarrowLinearInputs): on CUDA one kernel forward and the
// weight and bias gradients by one column-parts kernel and one sum_rows
// (kernels::cuda::narrow_linear_*); on the CPU LibTorch's ops, under the
// same scopes (bench_op_count counts them as the CUDA kernels). Wider (CUDA
// only): LibTorch's GEMMs, the bias gradient by column_sums. dL/dx, where
// wanted, is a GEMM either way.
struct Linear : public torch::autograd::Function<Linear> {
  static bool narrow(const torch::Tensor& weight) {
    return weight.size(1) >= 1 && weight.size(1) <= kernels::cuda::kNarrowLinearInputs;
  }

  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    const torch::Tensor rows = x.reshape({-1, x.size(-1)});
    ctx->save_for_backward({x, weight});
    if (!narrow(weight)) return torch::addmm(bias, rows, weight.t()).view(sizes);
    RECORD_USER_SCOPE("compressm::narrow_linear_forward");
    if (!x.is_cuda()) return torch::addmm(bias, rows, weight.t()).view(sizes);
    torch::Tensor out = torch::empty({rows.size(0), weight.size(0)}, x.options());
    cuda_ops::narrow_linear_forward(rows, weight, bias, out);
    return out.view(sizes);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_USER_SCOPE("compressm::linear_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const torch::Tensor g = grads[0].contiguous().view({-1, weight.size(0)}), rows = x.reshape({-1, x.size(-1)});
    torch::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) grad_x = g.mm(weight).view(x.sizes());
    if (narrow(weight) && (ctx->needs_input_grad(1) || ctx->needs_input_grad(2))) {
      RECORD_USER_SCOPE("compressm::narrow_linear_weight_grads");
      if (x.is_cuda()) {
        grad_weight = torch::empty_like(weight);
        grad_bias = torch::empty({weight.size(0)}, g.options());
        cuda_ops::narrow_linear_backward(g, rows, grad_weight, grad_bias);
      } else {
        grad_weight = g.t().mm(rows);
        grad_bias = g.sum(0);
      }
    } else if (!narrow(weight)) {
      if (ctx->needs_input_grad(1)) grad_weight = g.t().mm(rows);
      if (ctx->needs_input_grad(2)) {
        grad_bias = torch::empty({weight.size(0)}, g.options());
        cuda_ops::column_sums(g, grad_bias);
      }
    }
    return {grad_x, ctx->needs_input_grad(1) ? grad_weight : torch::Tensor(),
            ctx->needs_input_grad(2) ? grad_bias : torch::Tensor()};
  }
};

}  // namespace

namespace detail {

cuda_ops::Dropout forward_dropout(const std::optional<torch::Tensor>& mask, double p, bool draw,
                                  const torch::Device& device) {
  cuda_ops::Dropout d;
  d.keep = mask.value_or(torch::Tensor());
  d.scale = scale_of(p);
  d.p = p;
  d.draw = draw;
  if (draw) {
    TORCH_CHECK(device.is_cuda() && !d.keep.defined(), "dropout drawn in the kernels: CUDA tensors, no mask");
    d.philox = cuda_ops::generator_philox(device);
  }
  return d;
}

void save_dropout(AutogradContext* ctx, const cuda_ops::Dropout& d) {
  ctx->saved_data["keep"] = d.keep;
  ctx->saved_data["scale"] = d.scale;
  ctx->saved_data["p"] = d.p;
  ctx->saved_data["draw"] = d.draw;
  if (d.draw) save_philox(ctx, d.philox);
}

bool draws_in_kernels(const torch::Tensor& like, double p) {
  return like.is_cuda() && p > 0.0 && cuda_ops::compiled();
}

torch::Tensor mask_drawn_instead(c10::IntArrayRef sizes, double p, const torch::Device& device) {
  RECORD_USER_SCOPE(kKernelDrawnMasksScope);
  return dropout_keep_mask(sizes, p, device);
}

cuda_ops::Dropout saved_dropout(AutogradContext* ctx) {
  cuda_ops::Dropout d;
  d.keep = ctx->saved_data["keep"].toTensor();
  d.scale = ctx->saved_data["scale"].toDouble();
  d.p = ctx->saved_data["p"].toDouble();
  d.draw = ctx->saved_data["draw"].toBool();
  if (d.draw) d.philox = saved_philox(ctx);
  return d;
}

}  // namespace detail

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const bool same_types = bias.defined() && x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1) &&
                          weight.scalar_type() == x.scalar_type() && bias.scalar_type() == x.scalar_type() &&
                          bias.dim() == 1 && bias.size(0) == weight.size(0) && weight.device() == x.device() &&
                          bias.device() == x.device();
  if (same_types && x.is_cuda() && x.scalar_type() == torch::kFloat && cuda_ops::compiled())
    return Linear::apply(x.contiguous(), weight.contiguous(), bias.contiguous());
  if (same_types && x.is_cpu() && fused_ops_support(x) && Linear::narrow(weight))
    return Linear::apply(x, weight, bias);
  return torch::nn::functional::linear(x, weight, bias);
}

torch::Tensor mean_over_time(const torch::Tensor& h) {
  TORCH_CHECK(h.dim() == 3 && h.size(1) > 0, "mean_over_time: h must be {B, L, H} with L > 0, got ", h.sizes());
  if (h.is_cuda() && h.scalar_type() == torch::kFloat && cuda_ops::compiled()) return MeanOverTime::apply(h.contiguous());
  return h.mean(1);
}

bool fused_ops_support(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat || (t.scalar_type() == torch::kDouble && t.device().is_cpu());
}

std::pair<torch::Tensor, torch::Tensor> classification_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
              "classification_loss: logits must be a non-empty {B, C}, got ", logits.sizes());
  check_compute_dtype("classification_loss", logits);
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0) && labels.scalar_type() == torch::kLong &&
                  labels.device() == logits.device(),
              "classification_loss: labels must be int64 {", logits.size(0), "} on ", logits.device(), ", got ",
              labels.scalar_type(), " ", labels.sizes(), " on ", labels.device());
  const torch::Tensor l = labels.contiguous();
  if (l.device().is_cpu()) {  // a plain loop: no ATen op that a CUDA step would not run (bench_op_count)
    const int64_t* y = l.data_ptr<int64_t>();
    const auto [low, high] = std::minmax_element(y, y + l.numel());
    TORCH_CHECK(*low >= 0 && *high < logits.size(1), "classification_loss: labels must be in [0, ", logits.size(1),
                "), got ", *low, " .. ", *high);
  }
  const tensor_list out = ClassificationLoss::apply(logits.contiguous(), l);
  return {out[0], out[1]};
}

std::array<torch::Tensor, 4> lru_parameterize(const torch::Tensor& nu_log, const torch::Tensor& theta_log,
                                              const torch::Tensor& gamma_log, const torch::Tensor& B_re,
                                              const torch::Tensor& B_im) {
  TORCH_CHECK(B_re.dim() == 2 && B_re.size(0) > 0 && B_re.size(1) > 0,
              "lru_parameterize: B_re must be a non-empty {N, H}, got ", B_re.sizes());
  const int64_t n = B_re.size(0);
  for (const auto& [t, name] : {std::pair<const torch::Tensor&, const char*>{nu_log, "nu_log"},
                                {theta_log, "theta_log"}, {gamma_log, "gamma_log"}}) {
    TORCH_CHECK(t.dim() == 1 && t.size(0) == n, "lru_parameterize: ", name, " must be {", n, "}, got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == B_re.scalar_type() && t.device() == B_re.device(), "lru_parameterize: ", name,
                " must have B_re's dtype and device");
  }
  TORCH_CHECK(B_im.sizes() == B_re.sizes() && B_im.scalar_type() == B_re.scalar_type() &&
                  B_im.device() == B_re.device(),
              "lru_parameterize: B_im must match B_re (", B_re.sizes(), "), got ", B_im.sizes());
  check_compute_dtype("lru_parameterize", B_re);
  const tensor_list out =
      LruParameterize::apply(nu_log.contiguous(), theta_log.contiguous(), gamma_log.contiguous(), B_re.contiguous(),
                             B_im.contiguous());
  return {out[0], out[1], out[2], out[3]};
}

torch::Tensor dropout_keep_mask(c10::IntArrayRef sizes, double p, const torch::Device& device) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: rate must be in [0, 1), got ", p);
  if (p == 0.0) return torch::Tensor();
  torch::Tensor keep = torch::empty(sizes, torch::TensorOptions().dtype(torch::kByte).device(device));
  if (!device.is_cpu() && !(device.is_cuda() && cuda_ops::compiled())) return keep.bernoulli_(1.0 - p);
  RECORD_USER_SCOPE("compressm::dropout_keep_mask");  // one kernel on CUDA (bench_op_count counts it so)
  if (device.is_cuda()) {
    cuda_ops::draw_keep_mask(keep, p);
    return keep;
  }
  uint64_t seed = 0;
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
  }
  ew::fill_keep_mask(keep.data_ptr<uint8_t>(), keep.numel(), seed, 1.0 - p);
  return keep;
}

bool narrow_mix_support(const torch::Tensor& y) {
  const bool dtype_ok = y.is_cuda() ? cuda_ops::compiled() && y.scalar_type() == torch::kFloat
                                    : y.device().is_cpu() && (y.scalar_type() == torch::kFloat ||
                                                              y.scalar_type() == torch::kDouble);
  return dtype_ok && y.dim() >= 1 && y.size(-1) >= 1 && y.size(-1) <= kernels::narrow_mix::kMaxHidden;
}

namespace {
void check_narrow_mix(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& bias) {
  TORCH_CHECK(narrow_mix_support(y), "narrow_mix: y must be a float32 or float64 tensor {.., H} (float32 on CUDA) ",
              "with 1 <= H <= ", kernels::narrow_mix::kMaxHidden, ", got ", y.scalar_type(), " ", y.sizes(), " on ",
              y.device());
  const int64_t h = y.size(-1);
  TORCH_CHECK(x.sizes() == y.sizes(), "narrow_mix: x must be ", y.sizes(), " (y's shape), got ", x.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == 2 * h && weight.size(1) == h,
              "narrow_mix: weight must be {", 2 * h, ", ", h, "} ([value; gate]), got ", weight.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == 2 * h, "narrow_mix: bias must be {", 2 * h, "}, got ",
              bias.sizes());
  for (const auto& [t, name] : {std::pair<const torch::Tensor&, const char*>{x, "x"}, {weight, "weight"},
                                {bias, "bias"}})
    TORCH_CHECK(t.scalar_type() == y.scalar_type() && t.device() == y.device(), "narrow_mix: ", name,
                " must have y's dtype (", y.scalar_type(), ") and device, got ", t.scalar_type(), " on ", t.device());
}
}  // namespace

torch::Tensor narrow_mix(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, const torch::Tensor& keep_gelu, const torch::Tensor& keep_glu,
                         double p) {
  check_narrow_mix(y, x, weight, bias);
  check_keep("narrow_mix", keep_gelu, y, p);
  check_keep("narrow_mix", keep_glu, y, p);
  return NarrowMix::apply(y.contiguous(), x.contiguous(), weight.contiguous(), bias.contiguous(),
                          optional_mask(keep_gelu), optional_mask(keep_glu), p, false);
}

torch::Tensor narrow_mix_dropout(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias, double p) {
  check_narrow_mix(y, x, weight, bias);
  TORCH_CHECK(p >= 0.0 && p < 1.0, "narrow_mix: dropout rate must be in [0, 1), got ", p);
  if (!y.is_cuda() || p == 0.0) {
    torch::Tensor keep_gelu, keep_glu;
    {
      // (bench_op_count counts no kernel here: on CUDA the op's kernels draw them)
      RECORD_USER_SCOPE("compressm::narrow_mix_masks");
      // Drawn one after the other (an argument list's order is unspecified).
      keep_gelu = dropout_keep_mask(y.sizes(), p, y.device());
      keep_glu = dropout_keep_mask(x.sizes(), p, x.device());
    }
    return narrow_mix(y, x, weight, bias, keep_gelu, keep_glu, p);
  }
  return NarrowMix::apply(y.contiguous(), x.contiguous(), weight.contiguous(), bias.contiguous(), std::nullopt,
                          std::nullopt, p, true);
}

torch::Tensor gelu_dropout(const torch::Tensor& y, const torch::Tensor& keep, double p, torch::ScalarType out_dtype) {
  check_compute_dtype("gelu_dropout", y);
  check_keep("gelu_dropout", keep, y, p);
  TORCH_CHECK(gemm_side_ok(out_dtype, y.scalar_type()), "gelu_dropout: output dtype ", out_dtype,
              " with input ", y.scalar_type(), " (allowed: the input's, or bfloat16 for float32)");
  return GeluDropout::apply(y.contiguous(), optional_mask(keep), scale_of(p), out_dtype);
}

namespace {
void check_glu_residual(const torch::Tensor& vg, const torch::Tensor& x, const torch::Tensor& bias) {
  check_compute_dtype("glu_residual", x);
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) > 0, "glu_residual: x must have a non-empty last dimension");
  std::vector<int64_t> vg_sizes = x.sizes().vec();
  vg_sizes.back() *= 2;
  TORCH_CHECK(vg.sizes() == c10::IntArrayRef(vg_sizes), "glu_residual: vg must be ", c10::IntArrayRef(vg_sizes),
              " ([value | gate] for x of ", x.sizes(), "), got ", vg.sizes());
  TORCH_CHECK(vg.device() == x.device(), "glu_residual: vg must be on x's device");
  TORCH_CHECK(gemm_side_ok(vg.scalar_type(), x.scalar_type()), "glu_residual: vg dtype ", vg.scalar_type(),
              " with x ", x.scalar_type(), " (allowed: x's, or bfloat16 for float32)");
  if (bias.defined())
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == vg_sizes.back() && bias.scalar_type() == x.scalar_type() &&
                    bias.device() == x.device(),
                "glu_residual: bias must be ", x.scalar_type(), " {", vg_sizes.back(), "} on ", x.device(), ", got ",
                bias.scalar_type(), " ", bias.sizes(), " on ", bias.device());
}
}  // namespace

torch::Tensor glu_residual(const torch::Tensor& vg, const torch::Tensor& x, const torch::Tensor& keep, double p,
                           const torch::Tensor& bias) {
  check_glu_residual(vg, x, bias);
  check_keep("glu_residual", keep, x, p);
  const torch::Tensor b = bias.defined() ? bias.contiguous() : torch::empty({0}, x.options());
  return GluResidual::apply(vg.contiguous(), b, x.contiguous(), optional_mask(keep), p, false);
}

torch::Tensor glu_residual_dropout(const torch::Tensor& vg, const torch::Tensor& x, double p,
                                   const torch::Tensor& bias) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "glu_residual: dropout rate must be in [0, 1), got ", p);
  check_glu_residual(vg, x, bias);
  if (!detail::draws_in_kernels(x, p))
    return glu_residual(vg, x, detail::mask_drawn_instead(x.sizes(), p, x.device()), p, bias);
  const torch::Tensor b = bias.defined() ? bias.contiguous() : torch::empty({0}, x.options());
  return GluResidual::apply(vg.contiguous(), b, x.contiguous(), std::nullopt, p, true);
}

}  // namespace compressm::nn
