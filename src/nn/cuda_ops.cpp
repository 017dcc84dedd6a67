// cuda_ops.h with the kernels of src/kernels/cuda. Built only with CUDA.
// Kernels run on the current stream of the tensors' device; per-row gradient
// parts are summed here with LibTorch reductions (a fixed order, no atomics).
#include "nn/cuda_ops.h"

#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/record_function.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/autograd.h>

#include <mutex>
#include <vector>

#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/fused_ops_cuda.h"
#include "kernels/cuda/lru_cuda.h"
#include "kernels/cuda/narrow_mix_cuda.h"
#include "kernels/philox.h"
#include "nn/checkpointed_layer.h"

namespace compressm::nn::cuda_ops {
namespace {

using detail::AutogradContext;
using detail::shape_of;
using detail::tensor_list;

kernels::cuda::Stream stream_of(const torch::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

kernels::cuda::Storage storage_of(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? kernels::cuda::Storage::kBFloat16 : kernels::cuda::Storage::kFloat32;
}

// Interleaved (re, im) floats of a complex64 tensor.
float* floats(const torch::Tensor& t) { return reinterpret_cast<float*>(t.data_ptr<c10::complex<float>>()); }

// (RECORD_USER_SCOPE declares a variable named `guard`: the device guards
// here are named device_guard.)
struct DiagonalScanCuda : public torch::autograd::Function<DiagonalScanCuda> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& lambda, const torch::Tensor& u) {
    RECORD_USER_SCOPE("compressm::diagonal_scan_forward");
    const c10::cuda::CUDAGuard device_guard(u.device());
    torch::Tensor x = torch::empty_like(u);
    kernels::cuda::diagonal_scan_forward(floats(lambda), floats(u), floats(x), {u.size(0), u.size(1), u.size(2)},
                                         stream_of(u));
    ctx->save_for_backward({lambda, x});
    return x;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::diagonal_scan_backward");
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &lambda = saved[0], &x = saved[1];
    const c10::cuda::CUDAGuard device_guard(x.device());
    const torch::Tensor grad_x = grad_outputs[0].resolve_conj().contiguous();
    torch::Tensor grad_u = torch::empty_like(x);
    torch::Tensor rows = torch::empty({x.size(0), x.size(2)}, x.options());
    kernels::cuda::diagonal_scan_backward(floats(lambda), floats(x), floats(grad_x), floats(grad_u), floats(rows),
                                          {x.size(0), x.size(1), x.size(2)}, stream_of(x));
    return {rows.sum(0), grad_u};
  }
};

// The fused CUDA kernels (kernels/cuda/lru_cuda.h) for detail::CheckpointedLayer.
struct CudaKernels {
  static int64_t checkpoint_size(const kernels::LruShape& shape) { return kernels::cuda::fused_checkpoint_size(shape); }
  static torch::Tensor forward(const tensor_list& t, const torch::Tensor& checkpoints);
  static tensor_list backward(const tensor_list& t, const torch::Tensor& checkpoints, const torch::Tensor& grad_y);
};

// y = sum of the state blocks' parts + D .* u; fills `checkpoints` when defined.
torch::Tensor CudaKernels::forward(const tensor_list& t, const torch::Tensor& checkpoints) {
  const torch::Tensor& u = t[7];
  const c10::cuda::CUDAGuard guard(u.device());
  const kernels::LruShape shape = shape_of(u, t[0]);
  const int64_t blocks = kernels::cuda::fused_state_blocks(shape);
  torch::Tensor parts = torch::empty({blocks, shape.batch, shape.length, shape.hidden}, u.options());
  kernels::cuda::lru_layer_forward(detail::weights_of<float>(t), u.data_ptr<float>(), parts.data_ptr<float>(),
                                   checkpoints.defined() ? checkpoints.data_ptr<float>() : nullptr, shape,
                                   stream_of(u));
  // The state blocks' parts summed and the skip term added in one pass.
  torch::Tensor y = torch::empty_like(u);
  kernels::cuda::lru_skip_forward(parts.data_ptr<float>(), kernels::cuda::Storage::kFloat32, t[6].data_ptr<float>(),
                                  u.data_ptr<float>(), y.data_ptr<float>(), shape.batch * shape.length, shape.hidden,
                                  stream_of(u), blocks);
  return y;
}

tensor_list CudaKernels::backward(const tensor_list& t, const torch::Tensor& checkpoints,
                                  const torch::Tensor& grad_y) {
  const torch::Tensor& u = t[7];
  const c10::cuda::CUDAGuard guard(u.device());
  const kernels::LruShape shape = shape_of(u, t[0]);
  const auto o = u.options();
  const int64_t B = shape.batch, N = shape.state, H = shape.hidden;
  const int64_t R = kernels::cuda::fused_gradient_rows(shape);  // B x the backward's time segments
  torch::Tensor lambda_re = torch::empty({R, N}, o), lambda_im = torch::empty({R, N}, o);
  torch::Tensor B_re = torch::empty({R, N, H}, o), B_im = torch::empty({R, N, H}, o);
  torch::Tensor C_re = torch::empty({R, H, N}, o), C_im = torch::empty({R, H, N}, o);
  torch::Tensor u_parts = torch::empty({kernels::cuda::fused_state_blocks(shape), B, shape.length, H}, o);
  const kernels::cuda::LruGradientParts parts{lambda_re.data_ptr<float>(), lambda_im.data_ptr<float>(),
                                              B_re.data_ptr<float>(),      B_im.data_ptr<float>(),
                                              C_re.data_ptr<float>(),      C_im.data_ptr<float>(),
                                              u_parts.data_ptr<float>(),   R};
  kernels::cuda::lru_layer_backward(detail::weights_of<float>(t), u.data_ptr<float>(), checkpoints.data_ptr<float>(),
                                    grad_y.data_ptr<float>(), parts, shape, stream_of(u));
  // The per-row parts summed over the batch and time segments (and the state
  // blocks' dL/du parts over the blocks) in one launch, with the parts of
  // dL/dD = the column sums of dL/dy .* u over the B L rows
  // (column_sum_parts: at H = 8 LibTorch's product and sum took 3.5 + 11.6
  // us, H200). The skip term's dL/du share stays with LibTorch (addcmul): a
  // column-parts kernel (lru_skip_backward) would run one warp per part of
  // rows with 2 of its 32 threads busy (four columns each).
  const int64_t rows = B * shape.length;
  torch::Tensor D_parts = torch::empty({kernels::cuda::column_sum_parts(rows, H), H}, o);
  kernels::cuda::column_sum_parts(grad_y.data_ptr<float>(), kernels::cuda::Storage::kFloat32, u.data_ptr<float>(),
                                  D_parts.data_ptr<float>(), rows, H, stream_of(u));
  tensor_list sums{torch::empty({N}, o),    torch::empty({N}, o),    torch::empty({N, H}, o),
                   torch::empty({N, H}, o), torch::empty({H, N}, o), torch::empty({H, N}, o),
                   torch::empty({B, shape.length, H}, o), torch::empty({H}, o)};
  const tensor_list row_parts{lambda_re, lambda_im, B_re, B_im, C_re, C_im, u_parts, D_parts};
  static_assert(kernels::cuda::kSumRowsJobs >= 8, "one sum_rows launch for the layer's eight sums");
  std::vector<kernels::cuda::SumRowsJob> jobs;
  for (size_t k = 0; k < sums.size(); ++k)
    jobs.push_back({row_parts[k].data_ptr<float>(), sums[k].data_ptr<float>(), row_parts[k].size(0),
                    sums[k].numel()});
  kernels::cuda::sum_rows(jobs.data(), static_cast<int>(jobs.size()), stream_of(u));
  return {sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[7], torch::addcmul(sums[6], t[6], grad_y)};
}

}  // namespace

bool compiled() { return true; }

torch::Tensor diagonal_scan(const torch::Tensor& lambda, const torch::Tensor& u) {
  return DiagonalScanCuda::apply(lambda, u);
}

void set_fused_time_segments(int64_t segments) {
  try {
    kernels::cuda::set_fused_time_segments(segments);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, e.what());
  }
}

void set_elementwise_vector_width(int64_t width) {
  TORCH_CHECK(width == 1 || width == 4, "set_elementwise_vector_width: 4 or 1, got ", width);
  kernels::cuda::set_vector_width(static_cast<int>(width));
}

torch::Tensor lru_layer_fused(const LruLayerInputs& in) {
  return detail::apply_checkpointed<CudaKernels>(
      {in.lambda_re, in.lambda_im, in.B_re, in.B_im, in.C_re, in.C_im, in.D, in.u});
}

namespace {
// The bf16 scans load (re, im) pairs as __nv_bfloat162: 4-byte aligned on
// the device (a view at an odd element offset would fault there, not in the
// CPU emulator).
uint16_t* mutable_bf16_bits(const torch::Tensor& t) {
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4 == 0,
              "diagonal_scan_bf16 (CUDA): bfloat16 (re, im) pairs must start 4-byte aligned");
  return reinterpret_cast<uint16_t*>(t.data_ptr<c10::BFloat16>());
}
const uint16_t* bf16_bits(const torch::Tensor& t) { return mutable_bf16_bits(t); }
// lambda, the checkpoints and the dL/dlambda rows are read and written as
// float2 (re, im): 8-byte aligned on the device (the emulator's float2 is not).
float* complex_floats(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 8 == 0, "diagonal_scan_bf16 (CUDA): ", name,
              " (float (re, im) pairs) must start 8-byte aligned");
  return t.data_ptr<float>();
}
kernels::ScanShape scan_shape(const torch::Tensor& u) { return {u.size(0), u.size(1), u.size(2) / 2}; }
}  // namespace

void diagonal_scan_bf16_forward(const torch::Tensor& lambda, const torch::Tensor& u, const torch::Tensor& x,
                                const torch::Tensor& checkpoints) {
  const c10::cuda::CUDAGuard guard(u.device());
  kernels::cuda::diagonal_scan_bf16_forward(complex_floats(lambda, "lambda"), bf16_bits(u), mutable_bf16_bits(x),
                                            complex_floats(checkpoints, "checkpoints"), scan_shape(u), stream_of(u));
}

void diagonal_scan_bf16_backward(const torch::Tensor& lambda, const torch::Tensor& u, const torch::Tensor& checkpoints,
                                 const torch::Tensor& grad_x, const torch::Tensor& grad_u, const torch::Tensor& rows) {
  const c10::cuda::CUDAGuard guard(u.device());
  kernels::cuda::diagonal_scan_bf16_backward(complex_floats(lambda, "lambda"), bf16_bits(u),
                                             complex_floats(checkpoints, "checkpoints"), bf16_bits(grad_x),
                                             mutable_bf16_bits(grad_u), complex_floats(rows, "dL/dlambda rows"),
                                             scan_shape(u), stream_of(u));
}

void lru_skip_forward(const torch::Tensor& cx, const torch::Tensor& D, const torch::Tensor& u,
                      const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(u.device());
  const int64_t hidden = u.size(-1);
  kernels::cuda::lru_skip_forward(cx.data_ptr(), storage_of(cx), D.data_ptr<float>(), u.data_ptr<float>(),
                                  out.data_ptr<float>(), u.numel() / hidden, hidden, stream_of(u));
}

void lru_skip_backward(const torch::Tensor& grad_y, const torch::Tensor& u, const torch::Tensor& grad_u_gemm,
                       const torch::Tensor& D, const torch::Tensor& grad_u, const torch::Tensor& grad_D) {
  const c10::cuda::CUDAGuard guard(u.device());
  const int64_t hidden = u.size(-1), rows = u.numel() / hidden;
  torch::Tensor workspace = torch::empty({kernels::cuda::lru_skip_workspace(rows, hidden)}, u.options());
  kernels::cuda::lru_skip_backward(grad_y.data_ptr<float>(), u.data_ptr<float>(), grad_u_gemm.data_ptr(),
                                   storage_of(grad_u_gemm), D.data_ptr<float>(), grad_u.data_ptr<float>(),
                                   grad_D.data_ptr<float>(), workspace.data_ptr<float>(), rows, hidden, stream_of(u));
}

namespace {
kernels::cuda::Dropout kernel_dropout(const Dropout& d) {
  const float scale = static_cast<float>(d.scale);
  if (!d.draw) return kernels::cuda::mask_dropout(keep_ptr(d.keep), scale);
  return kernels::cuda::drawn_dropout(d.philox, kernels::philox::keep_threshold(1.0 - d.p), scale);
}
}  // namespace

void lru_skip_gelu_forward(const torch::Tensor& cx, const torch::Tensor& D, const SkipInput& u,
                           const Dropout& dropout, const torch::Tensor& g) {
  const c10::cuda::CUDAGuard guard(u.x.device());
  const int64_t hidden = u.x.size(-1);
  kernels::cuda::lru_skip_gelu_forward(cx.data_ptr(), storage_of(cx), D.data_ptr<float>(), norm_input(u),
                                       g.data_ptr(), u.x.numel() / hidden, hidden, kernel_dropout(dropout),
                                       stream_of(u.x));
}

void lru_skip_gelu_backward(const torch::Tensor& grad_g, const torch::Tensor& cx, const torch::Tensor& D,
                            const SkipInput& u, const torch::Tensor& grad_out, const Dropout& dropout,
                            const torch::Tensor& grad_cx, const torch::Tensor& grad_skip, const torch::Tensor& sums) {
  const c10::cuda::CUDAGuard guard(u.x.device());
  const int64_t hidden = u.x.size(-1), rows = u.x.numel() / hidden;
  TORCH_CHECK(sums.numel() == (u.mean.defined() ? 2 : 1) * hidden && (u.mean.defined() || !grad_out.defined()),
              "lru_skip_gelu_backward: sums must have 2H entries where u is normalised, else H; grad_out only then");
  torch::Tensor workspace = torch::empty({kernels::cuda::lru_skip_workspace(rows, hidden)}, u.x.options());
  kernels::cuda::lru_skip_gelu_backward(grad_g.data_ptr(), cx.data_ptr(), storage_of(cx), D.data_ptr<float>(),
                                        norm_input(u), grad_out.defined() ? grad_out.data_ptr<float>() : nullptr,
                                        grad_cx.data_ptr(), grad_skip.data_ptr<float>(), sums.data_ptr<float>(),
                                        workspace.data_ptr<float>(), rows, hidden, kernel_dropout(dropout),
                                        stream_of(u.x));
}

void column_moments(const torch::Tensor& x, double eps, const torch::Tensor& mean, const torch::Tensor& var,
                    const torch::Tensor& invstd, const kernels::elementwise::RunningStats& running) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t hidden = x.size(-1), rows = x.numel() / hidden;
  torch::Tensor workspace = torch::empty({kernels::cuda::batch_norm_workspace(rows, hidden)}, x.options());
  kernels::cuda::column_moments(x.data_ptr<float>(), rows, hidden, static_cast<float>(eps), mean.data_ptr<float>(),
                                var.data_ptr<float>(), invstd.data_ptr<float>(), workspace.data_ptr<float>(),
                                stream_of(x), running);
}

void batch_norm_cast(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
                     const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t hidden = x.size(-1);
  kernels::cuda::batch_norm_cast(x.data_ptr<float>(), mean.data_ptr<float>(), invstd.data_ptr<float>(),
                                 out.data_ptr(), storage_of(out), x.numel() / hidden, hidden, stream_of(x));
}

void batch_norm_backward(const torch::Tensor& grad_x, const torch::Tensor& grad_u_gemm, const SkipInput& u,
                         const torch::Tensor& D, const torch::Tensor& skip_sums) {
  TORCH_CHECK(u.mean.defined() && u.invstd.defined(), "batch_norm_backward: u must be {x, mean, invstd}");
  const c10::cuda::CUDAGuard guard(u.x.device());
  const int64_t hidden = u.x.size(-1), rows = u.x.numel() / hidden;
  TORCH_CHECK(skip_sums.numel() == 2 * hidden, "batch_norm_backward: skip_sums must have 2H entries");
  torch::Tensor workspace = torch::empty({kernels::cuda::batch_norm_workspace(rows, hidden)}, u.x.options());
  kernels::cuda::batch_norm_backward(grad_x.data_ptr<float>(), grad_u_gemm.data_ptr(), storage_of(grad_u_gemm),
                                     norm_input(u), D.data_ptr<float>(), skip_sums.data_ptr<float>(),
                                     workspace.data_ptr<float>(), rows, hidden, stream_of(u.x));
}

void gelu_dropout_forward(const torch::Tensor& y, const torch::Tensor& keep, double scale, const torch::Tensor& z) {
  const c10::cuda::CUDAGuard guard(y.device());
  kernels::cuda::gelu_dropout_forward(y.data_ptr<float>(), z.data_ptr(), storage_of(z), y.numel(), keep_ptr(keep),
                                      static_cast<float>(scale), stream_of(y));
}

void gelu_dropout_backward(const torch::Tensor& y, const torch::Tensor& grad_z, const torch::Tensor& keep,
                           double scale, const torch::Tensor& grad_y) {
  const c10::cuda::CUDAGuard guard(y.device());
  kernels::cuda::gelu_dropout_backward(y.data_ptr<float>(), grad_z.data_ptr(), storage_of(grad_z),
                                       grad_y.data_ptr<float>(), y.numel(), keep_ptr(keep), static_cast<float>(scale),
                                       stream_of(y));
}

void glu_residual_forward(const torch::Tensor& vg, const torch::Tensor& bias, const torch::Tensor& x,
                          const Dropout& dropout, const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t hidden = x.size(-1);
  kernels::cuda::glu_residual_forward(vg.data_ptr(), storage_of(vg), x.data_ptr<float>(), out.data_ptr<float>(),
                                      x.numel() / hidden, hidden, kernel_dropout(dropout), stream_of(x),
                                      data_or_null<float>(bias));
}

void glu_residual_backward(const torch::Tensor& vg, const torch::Tensor& bias, const torch::Tensor& grad_out,
                           const Dropout& dropout, const torch::Tensor& grad_vg, const torch::Tensor& grad_bias) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const int64_t hidden = grad_out.size(-1), rows = grad_out.numel() / hidden;
  const bool sums = grad_bias.defined() && rows > 0;
  if (grad_bias.defined() && rows == 0) grad_bias.zero_();
  const torch::Tensor workspace =
      sums ? torch::empty({kernels::cuda::glu_residual_workspace(rows, hidden)}, grad_out.options()) : torch::Tensor();
  kernels::cuda::glu_residual_backward(vg.data_ptr(), storage_of(vg), grad_out.data_ptr<float>(), grad_vg.data_ptr(),
                                       rows, hidden, kernel_dropout(dropout), stream_of(grad_out),
                                       data_or_null<float>(bias), sums ? grad_bias.data_ptr<float>() : nullptr,
                                       sums ? workspace.data_ptr<float>() : nullptr);
}

namespace {
kernels::elementwise::LruParameters<float> parameters_of(const std::vector<torch::Tensor>& t) {
  return {t[0].data_ptr<float>(), t[1].data_ptr<float>(), t[2].data_ptr<float>(), t[3].data_ptr<float>(),
          t[4].data_ptr<float>()};
}
}  // namespace

void lru_bf16_pack(const std::vector<torch::Tensor>& t, const torch::Tensor& lambda, const torch::Tensor& w_in,
                   const torch::Tensor& w_out) {
  const c10::cuda::CUDAGuard guard(t[2].device());
  kernels::cuda::lru_bf16_pack(t[0].data_ptr<float>(), t[1].data_ptr<float>(), t[2].data_ptr<float>(),
                               t[3].data_ptr<float>(), t[4].data_ptr<float>(), t[5].data_ptr<float>(), t[2].size(0),
                               lambda.size(0), t[2].size(1), lambda.data_ptr<float>(), w_in.data_ptr(),
                               w_out.data_ptr(), stream_of(t[2]));
}

void lru_bf16_unpack_gradients(const torch::Tensor& grad_w_in, const torch::Tensor& grad_w_out,
                               const torch::Tensor& lambda_rows, const std::vector<torch::Tensor>& grads) {
  const c10::cuda::CUDAGuard guard(grad_w_in.device());
  kernels::cuda::lru_bf16_unpack_gradients(
      grad_w_in.data_ptr(), grad_w_out.data_ptr(), lambda_rows.data_ptr<float>(), lambda_rows.size(0),
      grads[2].size(0), lambda_rows.size(1), grads[2].size(1), grads[0].data_ptr<float>(), grads[1].data_ptr<float>(),
      grads[2].data_ptr<float>(), grads[3].data_ptr<float>(), grads[4].data_ptr<float>(), grads[5].data_ptr<float>(),
      stream_of(grad_w_in));
}

void lru_parameterize_forward(const std::vector<torch::Tensor>& t, const std::vector<torch::Tensor>& out) {
  const c10::cuda::CUDAGuard guard(t[3].device());
  kernels::cuda::lru_parameterize_forward(parameters_of(t), t[3].size(0), t[3].size(1), out[0].data_ptr<float>(),
                                          out[1].data_ptr<float>(), out[2].data_ptr<float>(),
                                          out[3].data_ptr<float>(), stream_of(t[3]));
}

void lru_parameterize_backward(const std::vector<torch::Tensor>& t, const std::vector<torch::Tensor>& grads,
                               const std::vector<torch::Tensor>& out) {
  const c10::cuda::CUDAGuard guard(t[3].device());
  const kernels::elementwise::LruParameterGradients<float> g{out[0].data_ptr<float>(), out[1].data_ptr<float>(),
                                                             out[2].data_ptr<float>(), out[3].data_ptr<float>(),
                                                             out[4].data_ptr<float>()};
  kernels::cuda::lru_parameterize_backward(parameters_of(t), t[3].size(0), t[3].size(1), grads[0].data_ptr<float>(),
                                           grads[1].data_ptr<float>(), grads[2].data_ptr<float>(),
                                           grads[3].data_ptr<float>(), g, stream_of(t[3]));
}

void column_sums(const torch::Tensor& a, const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t cols = a.size(-1), rows = a.numel() / cols;
  torch::Tensor parts = torch::empty({kernels::cuda::column_sum_parts(rows, cols), cols}, out.options());
  kernels::cuda::column_sums(a.data_ptr(), storage_of(a), nullptr, out.data_ptr<float>(), parts.data_ptr<float>(), rows,
                             cols, stream_of(a));
}

void narrow_linear_forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                           const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(x.device());
  kernels::cuda::narrow_linear_forward(x.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
                                       out.data_ptr<float>(), x.size(0), x.size(1), weight.size(0), stream_of(x));
}

void narrow_linear_backward(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& grad_weight,
                            const torch::Tensor& grad_bias) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t rows = x.size(0), inputs = x.size(1), cols = grad.size(1);
  torch::Tensor workspace =
      torch::empty({kernels::cuda::narrow_linear_workspace(rows, inputs, cols)}, grad_weight.options());
  kernels::cuda::narrow_linear_backward(grad.data_ptr<float>(), x.data_ptr<float>(), grad_weight.data_ptr<float>(),
                                        grad_bias.data_ptr<float>(), workspace.data_ptr<float>(), rows, inputs, cols,
                                        stream_of(x));
}

kernels::cuda::PhiloxSeed generator_philox(const torch::Device& device) {
  at::Generator generator = at::cuda::detail::getDefaultCUDAGenerator(device.index());  // mutex() is not const
  at::PhiloxCudaState state;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    state = at::check_generator<at::CUDAGeneratorImpl>(generator)->philox_cuda_state(4);
  }
  kernels::cuda::PhiloxSeed seed;
  if (state.captured_) {
    seed.seed_ptr = state.seed_.ptr;
    seed.offset_ptr = state.offset_.ptr;
    seed.offset_intragraph = state.offset_intragraph_;
  } else {
    seed.seed = state.seed_.val;
    seed.offset = state.offset_.val;
  }
  return seed;
}

void draw_keep_mask(const torch::Tensor& keep, double p) {
  TORCH_CHECK(keep.is_cuda() && keep.scalar_type() == torch::kByte && keep.is_contiguous(),
              "draw_keep_mask: keep must be a contiguous uint8 CUDA tensor");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "draw_keep_mask: rate must be in [0, 1), got ", p);
  const c10::cuda::CUDAGuard device_guard(keep.device());
  kernels::cuda::draw_keep_mask(keep.data_ptr<uint8_t>(), keep.numel(), generator_philox(keep.device()),
                                kernels::philox::keep_threshold(1.0 - p), stream_of(keep));
}

namespace {
kernels::cuda::NarrowMixDropout narrow_mix_dropout(const NarrowMixMasks& masks) {
  kernels::cuda::NarrowMixDropout d;
  d.keep_gelu = keep_ptr(masks.keep_gelu);
  d.keep_glu = keep_ptr(masks.keep_glu);
  d.draw = masks.draw;
  d.philox = masks.philox;
  d.threshold = kernels::philox::keep_threshold(1.0 - masks.p);
  d.scale = static_cast<float>(1.0 / (1.0 - masks.p));
  return d;
}
}  // namespace

void narrow_mix_forward(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& bias, const NarrowMixMasks& masks, const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t hidden = y.size(-1);
  kernels::cuda::narrow_mix_forward(y.data_ptr<float>(), x.data_ptr<float>(), weight.data_ptr<float>(),
                                    bias.data_ptr<float>(), narrow_mix_dropout(masks), out.data_ptr<float>(),
                                    y.numel() / hidden, hidden, stream_of(y));
}

void narrow_mix_backward(const torch::Tensor& y, const torch::Tensor& weight, const torch::Tensor& bias,
                         const NarrowMixMasks& masks, const torch::Tensor& grad_out, const torch::Tensor& grad_y,
                         const torch::Tensor& grad_params) {
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t hidden = y.size(-1), rows = y.numel() / hidden;
  torch::Tensor workspace = torch::empty({kernels::cuda::narrow_mix_workspace(rows, hidden)}, y.options());
  kernels::cuda::narrow_mix_backward(y.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
                                     narrow_mix_dropout(masks), grad_out.data_ptr<float>(), grad_y.data_ptr<float>(),
                                     grad_params.data_ptr<float>(), workspace.data_ptr<float>(), rows, hidden,
                                     stream_of(y));
}

void mean_over_time(const torch::Tensor& h, const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(h.device());
  kernels::cuda::mean_over_time(h.data_ptr<float>(), out.data_ptr<float>(), h.size(0), h.size(1), h.size(2),
                                stream_of(h));
}

void mean_over_time_backward(const torch::Tensor& grad, const torch::Tensor& out) {
  const c10::cuda::CUDAGuard guard(out.device());
  kernels::cuda::mean_over_time_backward(grad.data_ptr<float>(), out.data_ptr<float>(), out.size(0), out.size(1),
                                         out.size(2), stream_of(out));
}

void cross_entropy_forward(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& row_lse,
                           const torch::Tensor& loss, const torch::Tensor& stats) {
  const c10::cuda::CUDAGuard guard(logits.device());
  kernels::cuda::cross_entropy_forward(logits.data_ptr<float>(), labels.data_ptr<int64_t>(), logits.size(0),
                                       logits.size(1), row_lse.data_ptr<float>(), loss.data_ptr<float>(),
                                       stats.data_ptr<double>(), stream_of(logits));
}

void cross_entropy_backward(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& row_lse,
                            const torch::Tensor& grad_loss, const torch::Tensor& grad_logits) {
  const c10::cuda::CUDAGuard guard(logits.device());
  kernels::cuda::cross_entropy_backward(logits.data_ptr<float>(), labels.data_ptr<int64_t>(), row_lse.data_ptr<float>(),
                                        logits.size(0), logits.size(1), grad_loss.data_ptr<float>(),
                                        grad_logits.data_ptr<float>(), stream_of(logits));
}

void adamw_step(const torch::Tensor& p, const torch::Tensor& m, const torch::Tensor& v,
                const std::vector<torch::Tensor>& grads, const std::vector<int64_t>& starts,
                const torch::Tensor& scalars, double beta1, double beta2, double eps) {
  const c10::cuda::CUDAGuard guard(p.device());
  TORCH_CHECK(starts.size() == grads.size() + 1, "adamw_step: ", grads.size(), " gradients need ", grads.size() + 1,
              " offsets");
  std::vector<torch::Tensor> kept;  // contiguous copies, alive until the launch is queued
  std::vector<const float*> pointers;
  for (size_t k = 0; k < grads.size(); ++k) {
    const torch::Tensor& g = grads[k];
    if (!g.defined()) {
      pointers.push_back(nullptr);
      continue;
    }
    TORCH_CHECK(g.scalar_type() == torch::kFloat && g.device() == p.device() && g.numel() == starts[k + 1] - starts[k],
                "adamw_step: gradient ", k, " must be float32 on ", p.device(), " with ", starts[k + 1] - starts[k],
                " elements");
    kept.push_back(g.contiguous());
    pointers.push_back(kept.back().data_ptr<float>());
  }
  const kernels::cuda::AdamwBucket bucket{p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                                          pointers.data(), starts.data(), static_cast<int64_t>(grads.size())};
  kernels::cuda::adamw_step(bucket, scalars.data_ptr<float>(), static_cast<float>(beta1), static_cast<float>(beta2),
                            static_cast<float>(eps), stream_of(p));
}

}  // namespace compressm::nn::cuda_ops
