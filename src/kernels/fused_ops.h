// Fused ops of the training step: work that LibTorch runs as a chain of
// small kernels (each a pass over memory and, on a GPU, a launch), written
// once here as per-element functions that the CPU loops (fused_ops.cpp) and
// the CUDA kernels (cuda/fused_ops.cu) both call. The CPU path, tested
// against LibTorch's composition, is the parity oracle of the device path.
//
//   gelu_dropout         z = dropout(GELU(y))   (GELU with exact erf)
//   glu_residual         out = x + dropout(v .* sigmoid(g)),  [v | g] = one GEMM's {.., 2H} output
//   lru_parameterize     lambda and Bt from nu_log, theta_log, gamma_log, B
//                        (LibTorch: ~11 kernels forward and more backward)
//   classification_loss  mean cross-entropy, its gradient, and the correct count
//   adamw_update         the AdamW update of the CUDA-graphed step
//   lru_skip             y = Re(C x) + D .* u of the wide LRU layer in bf16 mode
//                        (Re(C x) from a bfloat16 GEMM), and its backward pass:
//                        dL/du from both paths into u in one pass, dL/dD
//   lru_skip_gelu        the skip term and the block's GELU with dropout in one
//                        pass: g = dropout(GELU(cx + D .* u)), y never written
//   batch_norm           the block's BatchNorm (no affine) for the wide bf16
//                        layer: batch moments, the bfloat16 cast of the
//                        normalised input, and the backward pass with the
//                        residual's gradient added; the float32 normalised
//                        input is never written (NormInput: the skip kernels
//                        normalise x on the fly)
//
// Dropout is a keep mask (uint8, 1 = kept; null = no dropout) and the scale
// 1 / (1 - p) of the kept elements; the backward passes take the same mask.
// No LibTorch header here or in the .cu files.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define COMPRESSM_HD __host__ __device__ __forceinline__
#else
#define COMPRESSM_HD inline
#endif

namespace compressm::kernels::elementwise {

COMPRESSM_HD float erf_of(float x) { return erff(x); }
COMPRESSM_HD double erf_of(double x) { return erf(x); }
COMPRESSM_HD float exp_of(float x) { return expf(x); }
COMPRESSM_HD double exp_of(double x) { return exp(x); }
COMPRESSM_HD float sqrt_of(float x) { return sqrtf(x); }
COMPRESSM_HD double sqrt_of(double x) { return sqrt(x); }
COMPRESSM_HD float log_of(float x) { return logf(x); }
COMPRESSM_HD double log_of(double x) { return log(x); }
COMPRESSM_HD float cos_of(float x) { return cosf(x); }
COMPRESSM_HD double cos_of(double x) { return cos(x); }
COMPRESSM_HD float sin_of(float x) { return sinf(x); }
COMPRESSM_HD double sin_of(double x) { return sin(x); }

// GELU(y) = y Phi(y), Phi the standard normal CDF (LibTorch's approximate = "none").
template <class T>
COMPRESSM_HD T gelu(T y) {
  return T(0.5) * y * (T(1) + erf_of(y * T(0.70710678118654752440)));
}

// d GELU / dy = Phi(y) + y phi(y).
template <class T>
COMPRESSM_HD T gelu_derivative(T y) {
  const T cdf = T(0.5) * (T(1) + erf_of(y * T(0.70710678118654752440)));
  const T pdf = T(0.39894228040143267794) * exp_of(T(-0.5) * y * y);
  return cdf + y * pdf;
}

template <class T>
COMPRESSM_HD T sigmoid(T g) {
  return T(1) / (T(1) + exp_of(-g));
}

// The factor dropout puts on element i: scale if kept, 0 if dropped, 1 without a mask.
template <class T>
COMPRESSM_HD T dropout_factor(const uint8_t* keep, int64_t i, T scale) {
  return keep == nullptr ? T(1) : (keep[i] ? scale : T(0));
}

// v + bias[j], or v where there is no bias (the GLU's GEMM output and its
// bias, added here rather than by a pass of its own).
template <class T>
COMPRESSM_HD T with_bias(T v, const T* bias, int64_t j) {
  return bias == nullptr ? v : v + bias[j];
}

// glu_residual for one element, value v and gate g, after dropout factor d.
template <class T>
COMPRESSM_HD T glu_output(T x, T v, T g, T d) {
  return x + d * v * sigmoid(g);
}

// Its gradients with respect to v and g, given dL/dout (dL/dx is dL/dout).
template <class T>
COMPRESSM_HD void glu_gradients(T v, T g, T d, T grad_out, T& grad_v, T& grad_g) {
  const T s = sigmoid(g);
  grad_v = grad_out * d * s;
  grad_g = grad_out * d * v * s * (T(1) - s);
}

// lambda = exp(-exp(nu_log)) (cos + i sin)(exp(theta_log)) (docs/design.md §1).
template <class T>
COMPRESSM_HD void lru_lambda(T nu_log, T theta_log, T& re, T& im) {
  const T radius = exp_of(-exp_of(nu_log)), phase = exp_of(theta_log);
  re = radius * cos_of(phase);
  im = radius * sin_of(phase);
}

// dL/dnu_log and dL/dtheta_log from dL/dlambda_re and dL/dlambda_im:
// d lambda / d nu_log = -exp(nu_log) lambda, d lambda / d theta_log = i exp(theta_log) lambda.
template <class T>
COMPRESSM_HD void lru_lambda_gradients(T nu_log, T theta_log, T grad_re, T grad_im, T& grad_nu, T& grad_theta) {
  T re, im;
  lru_lambda(nu_log, theta_log, re, im);
  grad_nu = -exp_of(nu_log) * (grad_re * re + grad_im * im);
  grad_theta = exp_of(theta_log) * (grad_im * re - grad_re * im);
}

// The skip term of the wide LRU layer in the bf16 precision mode
// (lru_layer_bf16, src/nn/lru_layer_function.cpp): y = cx + d u, cx = Re(C x) from a GEMM.
template <class T>
COMPRESSM_HD T lru_skip(T cx, T d, T u) {
  return cx + d * u;
}

// The skip term followed by the block's GELU and dropout factor d, and the
// gradient of the pre-activation cx + D u from dL/dg (as gelu_dropout).
template <class T>
COMPRESSM_HD T skip_gelu(T cx, T d, T u, T factor) {
  return gelu(lru_skip(cx, d, u)) * factor;
}
template <class T>
COMPRESSM_HD T skip_gelu_gradient(T cx, T d, T u, T factor, T grad_g) {
  return grad_g * factor * gelu_derivative(lru_skip(cx, d, u));
}

// dL/dD = sum over rows of dL/dy .* u is summed in parts of
// lru_skip_part_rows(rows) consecutive rows (each part from zero, in row
// order), then the lru_skip_parts(rows) parts in order: the CPU loop and
// the CUDA kernel (a thread block per part and up to 256 column groups of
// one or four columns) add in the same order.
COMPRESSM_HD int64_t lru_skip_part_rows(int64_t rows) { return (rows + 255) / 256; }
COMPRESSM_HD int64_t lru_skip_parts(int64_t rows) {
  return rows == 0 ? 0 : (rows + lru_skip_part_rows(rows) - 1) / lru_skip_part_rows(rows);
}
// Rows in part p (the last part may be short).
COMPRESSM_HD int64_t lru_skip_part_size(int64_t rows, int64_t p) {
  const int64_t first = p * lru_skip_part_rows(rows), last = first + lru_skip_part_rows(rows);
  return (last < rows ? last : rows) - first;
}

// The input u of a kernel: stored (mean null), or the block's BatchNorm
// applied on the fly to the block input x, u = (x - mean[h]) * invstd[h].
struct NormInput {
  const float* x;
  const float* mean = nullptr;
  const float* invstd = nullptr;
};
COMPRESSM_HD float batch_norm(float x, float mean, float invstd) { return (x - mean) * invstd; }
COMPRESSM_HD float input_at(const NormInput& u, int64_t i, int64_t h) {
  return u.mean ? batch_norm(u.x[i], u.mean[h], u.invstd[h]) : u.x[i];
}

// Welford's update of a column's (count, mean, M2) by x, and Chan's merge of
// another part's moments into them.
COMPRESSM_HD void welford_add(float x, float& count, float& mean, float& m2) {
  count += 1.f;
  const float delta = x - mean;
  mean += delta / count;
  m2 += delta * (x - mean);
}
COMPRESSM_HD void moments_merge(float& count, float& mean, float& m2, float count_b, float mean_b, float m2_b) {
  if (count_b == 0.f) return;
  const float total = count + count_b, delta = mean_b - mean;
  mean += delta * (count_b / total);
  m2 += m2_b + delta * delta * (count * (count_b / total));
  count = total;
}

// BatchNorm1d's running statistics, updated from a batch's mean and biased
// variance as LibTorch does: r <- (1 - momentum) r + momentum b, the variance
// made unbiased (rows / (rows - 1)). Null pointers: no update.
struct RunningStats {
  float* mean = nullptr;
  float* var = nullptr;
  float momentum = 0.f;
  float unbiased = 1.f;  // rows / (rows - 1)
};
COMPRESSM_HD void update_running_stats(const RunningStats& r, int64_t h, float mean, float var) {
  if (!r.mean) return;
  r.mean[h] = (1.f - r.momentum) * r.mean[h] + r.momentum * mean;
  r.var[h] = (1.f - r.momentum) * r.var[h] + r.momentum * (var * r.unbiased);
}

// dL/dx of u = batch_norm(x) with batch statistics (biased variance), from
// dL/du = dz, plus the residual path's dL/dx (d_out): mean_dz and mean_dz_u
// are the column means of dz and dz .* u.
COMPRESSM_HD float batch_norm_gradient(float d_out, float dz, float u, float invstd, float mean_dz,
                                       float mean_dz_u) {
  return d_out + invstd * (dz - mean_dz - u * mean_dz_u);
}

// The skip term's share of the gradient below it, from gp = dL/d(cx + D u):
// D gp into a stored u; into the block input x where u = batch_norm(x) is
// made on the fly, invstd D gp plus the residual path's dL/dx (d_out), the
// part of batch_norm_gradient that needs no column mean. batch_norm_backward
// adds the rest in place.
COMPRESSM_HD float skip_input_gradient(float d_out, float d, float gp, bool normalized, float invstd) {
  return normalized ? d_out + invstd * (d * gp) : d_out + d * gp;
}
COMPRESSM_HD float skip_input_gradient(float d_out, float d, float gp, const NormInput& u, int64_t h) {
  return skip_input_gradient(d_out, d, gp, u.mean != nullptr, u.mean ? u.invstd[h] : 0.f);
}

// The column means of dz = D gp + g_gemm and dz .* u from the column sums of
// gp (sum_gp), gp .* u (dL/dD), g_gemm and g_gemm .* u: D is constant down a
// column, so the skip's shares need no pass of their own.
COMPRESSM_HD void batch_norm_gradient_means(float d, float sum_gp, float sum_gp_u, float sum_gemm, float sum_gemm_u,
                                            float inv_rows, float& mean_dz, float& mean_dz_u) {
  mean_dz = (d * sum_gp + sum_gemm) * inv_rows;
  mean_dz_u = (d * sum_gp_u + sum_gemm_u) * inv_rows;
}

// value(0) + value(1) + ... + value(count - 1), added in that order from
// 0.f: the CPU loops and the CUDA kernels sum parts and rows the same way.
template <class Value>
COMPRESSM_HD float sum_in_order(int64_t count, const Value& value) {
  float total = 0.f;
  for (int64_t k = 0; k < count; ++k) total += value(k);
  return total;
}

// The wide bf16 LRU layer's GEMM operands (nn/lru_layer_function.cpp)
// from its float32 parameters, N states padded to P >= N, H channels:
// element i < N H of B {N, H} and of C {H, N} goes to w_in {2P, H} at rows
// 2n (re) and 2n + 1 (im), and to w_out {H, 2P} at columns 2n (C_re) and
// 2n + 1 (-C_im).
COMPRESSM_HD void lru_bf16_pack_indices(int64_t i, int64_t state, int64_t padded, int64_t hidden, int64_t& in_re,
                                        int64_t& out_re) {
  in_re = 2 * (i / hidden) * hidden + i % hidden;       // in_im = in_re + hidden
  out_re = (i / state) * 2 * padded + 2 * (i % state);  // out_im = out_re + 1
}

// Cross-entropy of one row of C logits with label y: writes the row's
// log-sum-exp, returns -log softmax(row)[y]; `correct` = the first maximal
// logit is at y. A label outside [0, C) gives NaN.
template <class T>
COMPRESSM_HD T cross_entropy_row(const T* row, int64_t classes, int64_t y, T& lse, bool& correct) {
  int64_t best = 0;
  for (int64_t c = 1; c < classes; ++c)
    if (row[c] > row[best]) best = c;
  T sum = 0;
  for (int64_t c = 0; c < classes; ++c) sum += exp_of(row[c] - row[best]);
  lse = row[best] + log_of(sum);
  correct = best == y;
  return y >= 0 && y < classes ? lse - row[y] : T(NAN);
}

// d loss / d logit[c] of the mean over B rows, scaled by the loss's gradient.
template <class T>
COMPRESSM_HD T cross_entropy_gradient(T logit, T lse, bool is_label, T grad_loss_over_batch) {
  return (exp_of(logit - lse) - (is_label ? T(1) : T(0))) * grad_loss_over_batch;
}

// One AdamW update of one element (LibTorch's AdamW, decoupled weight decay):
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with decay = 1 - lr wd, step_size = lr / (1 - b1^t), inv_sqrt_bc2 = 1 / sqrt(1 - b2^t).
template <class T>
COMPRESSM_HD void adamw_update(T& p, T& m, T& v, T g, T decay, T step_size, T inv_sqrt_bc2, T beta1, T beta2,
                               T eps) {
  p *= decay;
  m = beta1 * m + (T(1) - beta1) * g;
  v = beta2 * v + (T(1) - beta2) * g * g;
  p -= step_size * m / (sqrt_of(v) * inv_sqrt_bc2 + eps);
}

// CPU loops over contiguous arrays (fused_ops.cpp; at::parallel_for).
// keep[i] = 1 with probability keep_prob, from Philox draws under `seed`
// (kernels/philox.h: element i is the same bit whoever draws it).
void fill_keep_mask(uint8_t* keep, int64_t n, uint64_t seed, double keep_prob);
// Y, X: float or double; the second type of each pair is the storage of the
// GEMM side (the bf16 precision mode keeps it in bfloat16), see the explicit
// instantiations there: Z / V in {Y, c10::BFloat16}.
//   z[i] = gelu(y[i]) * d_i
template <class Y, class Z>
void gelu_dropout_forward(const Y* y, Z* z, int64_t n, const uint8_t* keep, double scale);
//   grad_y[i] = grad_z[i] * d_i * gelu'(y[i])
template <class Y, class Z>
void gelu_dropout_backward(const Y* y, const Z* grad_z, Y* grad_y, int64_t n, const uint8_t* keep, double scale);
//   out[r, j] = x[r, j] + d * v * sigmoid(g),  vg {rows, 2H}, x and out {rows, H},
//   v = vg[r, j] + bias[j], g = vg[r, H + j] + bias[H + j] (bias {2H}, or null: none)
template <class V, class X>
void glu_residual_forward(const V* vg, const X* x, X* out, int64_t rows, int64_t hidden, const uint8_t* keep,
                          double scale, const X* bias = nullptr);
//   grad_vg {rows, 2H} from grad_out {rows, H} (summed over the rows it is the bias's gradient: the caller's)
template <class V, class X>
void glu_residual_backward(const V* vg, const X* grad_out, V* grad_vg, int64_t rows, int64_t hidden,
                           const uint8_t* keep, double scale, const X* bias = nullptr);

// lru_skip over {rows, H} float32 arrays, cx stored as V (float or bfloat16),
// or the sum of `parts` such arrays one after another, added in order (the
// fused narrow layer's state blocks on CUDA):
//   out[r, h] = sum over s of cx_s[r, h] + D[h] u[r, h]
template <class V>
void lru_skip_forward(const V* cx, const float* D, const float* u, float* out, int64_t rows, int64_t hidden,
                      int64_t parts = 1);
// Its backward pass, given dL/dy and the GEMM side's dL/du (grad_u_gemm,
// stored as V): grad_u = grad_u_gemm + D .* grad_y (both paths into u),
// grad_D {H} = sum over rows of grad_y .* u, in the parts above.
template <class V>
void lru_skip_backward(const float* grad_y, const float* u, const V* grad_u_gemm, const float* D, float* grad_u,
                       float* grad_D, int64_t rows, int64_t hidden);

// lru_skip_gelu over {rows, H}: g = skip_gelu(cx, D[h], u, d_i), cx and g
// stored as V. u: stored, or the BatchNorm of the block input (NormInput).
// Backward, from dL/dg, with gp = dL/d(pre): grad_cx = gp (stored as V),
// grad_skip = skip_input_gradient (u stored: D .* gp, the skip's share of
// dL/du; u normalised: grad_out + invstd .* D .* gp, to be completed by
// batch_norm_backward in place; grad_out may be null), and the column sums
// in lru_skip's parts: sums[0 .. H) = dL/dD = sum of gp .* u, and where u is
// normalised sums[H .. 2H) = sum of gp.
template <class V>
void lru_skip_gelu_forward(const V* cx, const float* D, NormInput u, V* g, int64_t rows, int64_t hidden,
                           const uint8_t* keep, double scale);
template <class V>
void lru_skip_gelu_backward(const V* grad_g, const V* cx, const float* D, NormInput u, const float* grad_out,
                            V* grad_cx, float* grad_skip, float* sums, int64_t rows, int64_t hidden,
                            const uint8_t* keep, double scale);

// BatchNorm of a {rows, H} float32 array x, statistics over the rows
// (LibTorch's BatchNorm1d in training, no affine):
//   column_moments: mean, biased var and invstd = 1 / sqrt(var + eps) per
//     column; Welford within lru_skip's parts of rows, the parts merged in
//     order; the running statistics updated where `running` has pointers
//   batch_norm_cast: out = batch_norm(x) stored as V (bfloat16 for the GEMM)
//   batch_norm_backward: dL/dx in place over grad_x, which holds
//     lru_skip_gelu_backward's grad_skip (grad_out + invstd .* D .* gp), with
//     dL/du = D .* gp + grad_u_gemm (both paths into u) and u = NormInput{x,
//     mean, invstd}: adds invstd .* (grad_u_gemm - mean(dL/du) - u .*
//     mean(dL/du .* u)). The means from skip_sums (that op's sums: dL/dD, then
//     the sum of gp) and the column sums of grad_u_gemm and grad_u_gemm .* u
//     in lru_skip's parts (batch_norm_gradient_means).
void column_moments(const float* x, int64_t rows, int64_t hidden, float eps, float* mean, float* var, float* invstd,
                    const RunningStats& running = {});
template <class V>
void batch_norm_cast(const float* x, const float* mean, const float* invstd, V* out, int64_t rows, int64_t hidden);
template <class V>
void batch_norm_backward(float* grad_x, const V* grad_u_gemm, NormInput u, const float* D, const float* skip_sums,
                         int64_t rows, int64_t hidden);

// The wide bf16 LRU layer's operands (lru_bf16_pack_indices), w_in and
// w_out stored as V, the N states padded to `padded` (>= N) with zero
// states: lambda {P, 2} = (lambda_re, lambda_im) interleaved, w_in {2P, H} =
// (B_re, B_im) by rows, w_out {H, 2P} = (C_re, -C_im) by columns, zero past
// state N. Back: the six parameters' gradients from those of w_in and w_out
// and the scan's per-row dL/dlambda parts {rows, P, 2} (the first N states'
// summed in row order; the padding's left out).
template <class V>
void lru_bf16_pack(const float* lambda_re, const float* lambda_im, const float* B_re, const float* B_im,
                   const float* C_re, const float* C_im, int64_t state, int64_t padded, int64_t hidden, float* lambda,
                   V* w_in, V* w_out);
template <class V>
void lru_bf16_unpack_gradients(const V* grad_w_in, const V* grad_w_out, const float* lambda_rows, int64_t rows,
                               int64_t state, int64_t padded, int64_t hidden, float* grad_lambda_re,
                               float* grad_lambda_im, float* grad_B_re, float* grad_B_im, float* grad_C_re,
                               float* grad_C_im);

// The LRU parameterisation, N states and H channels (T float or double):
//   lambda_{re,im}[n] = lru_lambda(nu_log[n], theta_log[n]),
//   Bt_{re,im}[n, h] = exp(gamma_log[n]) B_{re,im}[n, h]
template <class T>
struct LruParameters {
  const T *nu_log, *theta_log, *gamma_log, *B_re, *B_im;  // {N}, {N}, {N}, {N, H}, {N, H}
};
template <class T>
void lru_parameterize_forward(const LruParameters<T>& p, int64_t state, int64_t hidden, T* lambda_re, T* lambda_im,
                              T* Bt_re, T* Bt_im);
// Gradients of the five parameters (same shapes) from those of the four outputs.
template <class T>
struct LruParameterGradients {
  T *nu_log, *theta_log, *gamma_log, *B_re, *B_im;
};
template <class T>
void lru_parameterize_backward(const LruParameters<T>& p, int64_t state, int64_t hidden, const T* grad_lambda_re,
                               const T* grad_lambda_im, const T* grad_Bt_re, const T* grad_Bt_im,
                               const LruParameterGradients<T>& grads);

// Mean cross-entropy of logits {B, C} with int64 labels {B}; row_lse {B}
// keeps each row's log-sum-exp for the backward pass; correct = how many rows
// have their first maximal logit at the label.
template <class T>
T cross_entropy_forward(const T* logits, const int64_t* labels, int64_t batch, int64_t classes, T* row_lse,
                        int64_t& correct);
// grad_logits {B, C} = d (grad_loss * mean loss) / d logits.
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* labels, const T* row_lse, int64_t batch,
                            int64_t classes, T grad_loss, T* grad_logits);

}  // namespace compressm::kernels::elementwise
