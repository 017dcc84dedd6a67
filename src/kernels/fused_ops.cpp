// CPU loops of fused_ops.h: each element computed in the precision of
// Y / X (float or double), the GEMM side stored as Z / V.
#include "kernels/fused_ops.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "kernels/philox.h"

namespace compressm::kernels::elementwise {
namespace {

// Elements per task: enough work to pay for waking a thread.
constexpr int64_t kGrain = 1 << 15;

// Runs element(i, h) for every element i = r * hidden + h of a {rows, hidden}
// tensor, rows in parallel.
template <class Element>
void for_each_element(int64_t rows, int64_t hidden, const Element& element) {
  at::parallel_for(0, rows, kGrain / hidden + 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t h = 0; h < hidden; ++h) element(r * hidden + h, h);
  });
}

// Runs part(p, first, last) for each of the lru_skip_parts(rows) parts of
// rows [first, last), parts in parallel.
template <class Part>
void for_each_row_part(int64_t rows, const Part& part) {
  const int64_t part_rows = lru_skip_part_rows(rows);
  at::parallel_for(0, lru_skip_parts(rows), 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) part(p, p * part_rows, p * part_rows + lru_skip_part_size(rows, p));
  });
}

}  // namespace

void fill_keep_mask(uint8_t* keep, int64_t n, uint64_t seed, double keep_prob) {
  const uint64_t threshold = philox::keep_threshold(keep_prob);
  // kLanes Philox calls side by side (64 elements): the rounds over arrays
  // of lanes vectorise, where one call at a time runs scalar.
  constexpr int64_t kLanes = 16;
  const int64_t blocks = n / (4 * kLanes);
  at::parallel_for(0, blocks, kGrain / (4 * kLanes), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      uint32_t words[4][kLanes];
      for (int64_t lane = 0; lane < kLanes; ++lane) {
        const philox::Words w = philox::keep_words(seed, static_cast<uint64_t>(b * kLanes + lane));
        for (int j = 0; j < 4; ++j) words[j][lane] = w.w[j];
      }
      uint8_t* out = keep + b * 4 * kLanes;
      for (int64_t lane = 0; lane < kLanes; ++lane)
        for (int j = 0; j < 4; ++j) out[4 * lane + j] = words[j][lane] < threshold;
    }
  });
  for (int64_t i = blocks * 4 * kLanes; i < n; ++i) keep[i] = philox::keeps(seed, static_cast<uint64_t>(i), threshold);
}

template <class Y, class Z>
void gelu_dropout_forward(const Y* y, Z* z, int64_t n, const uint8_t* keep, double scale) {
  const Y s = static_cast<Y>(scale);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) z[i] = static_cast<Z>(gelu(y[i]) * dropout_factor(keep, i, s));
  });
}

template <class Y, class Z>
void gelu_dropout_backward(const Y* y, const Z* grad_z, Y* grad_y, int64_t n, const uint8_t* keep, double scale) {
  const Y s = static_cast<Y>(scale);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      grad_y[i] = static_cast<Y>(grad_z[i]) * dropout_factor(keep, i, s) * gelu_derivative(y[i]);
  });
}

template <class V, class X>
void glu_residual_forward(const V* vg, const X* x, X* out, int64_t rows, int64_t hidden, const uint8_t* keep,
                          double scale, const X* bias) {
  const X s = static_cast<X>(scale);
  at::parallel_for(0, rows, kGrain / hidden + 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const V* value = vg + r * 2 * hidden;
      const V* gate = value + hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const int64_t i = r * hidden + j;
        out[i] = glu_output(x[i], with_bias(static_cast<X>(value[j]), bias, j),
                            with_bias(static_cast<X>(gate[j]), bias, hidden + j), dropout_factor(keep, i, s));
      }
    }
  });
}

template <class V, class X>
void glu_residual_backward(const V* vg, const X* grad_out, V* grad_vg, int64_t rows, int64_t hidden,
                           const uint8_t* keep, double scale, const X* bias) {
  const X s = static_cast<X>(scale);
  at::parallel_for(0, rows, kGrain / hidden + 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const V* value = vg + r * 2 * hidden;
      const V* gate = value + hidden;
      V* grad_value = grad_vg + r * 2 * hidden;
      V* grad_gate = grad_value + hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const int64_t i = r * hidden + j;
        X gv, gg;
        glu_gradients(with_bias(static_cast<X>(value[j]), bias, j),
                      with_bias(static_cast<X>(gate[j]), bias, hidden + j), dropout_factor(keep, i, s), grad_out[i],
                      gv, gg);
        grad_value[j] = static_cast<V>(gv);
        grad_gate[j] = static_cast<V>(gg);
      }
    }
  });
}

template <class T>
void lru_parameterize_forward(const LruParameters<T>& p, int64_t state, int64_t hidden, T* lambda_re, T* lambda_im,
                              T* Bt_re, T* Bt_im) {
  for (int64_t n = 0; n < state; ++n) {
    lru_lambda(p.nu_log[n], p.theta_log[n], lambda_re[n], lambda_im[n]);
    const T gamma = exp_of(p.gamma_log[n]);
    for (int64_t h = n * hidden; h < (n + 1) * hidden; ++h) {
      Bt_re[h] = gamma * p.B_re[h];
      Bt_im[h] = gamma * p.B_im[h];
    }
  }
}

template <class T>
void lru_parameterize_backward(const LruParameters<T>& p, int64_t state, int64_t hidden, const T* grad_lambda_re,
                               const T* grad_lambda_im, const T* grad_Bt_re, const T* grad_Bt_im,
                               const LruParameterGradients<T>& g) {
  for (int64_t n = 0; n < state; ++n) {
    lru_lambda_gradients(p.nu_log[n], p.theta_log[n], grad_lambda_re[n], grad_lambda_im[n], g.nu_log[n],
                         g.theta_log[n]);
    const T gamma = exp_of(p.gamma_log[n]);
    T sum = 0;  // sum_h dL/dBt . B = dL/dgamma
    for (int64_t h = n * hidden; h < (n + 1) * hidden; ++h) {
      sum += grad_Bt_re[h] * p.B_re[h] + grad_Bt_im[h] * p.B_im[h];
      g.B_re[h] = gamma * grad_Bt_re[h];
      g.B_im[h] = gamma * grad_Bt_im[h];
    }
    g.gamma_log[n] = gamma * sum;
  }
}

template void lru_parameterize_forward<float>(const LruParameters<float>&, int64_t, int64_t, float*, float*, float*,
                                              float*);
template void lru_parameterize_forward<double>(const LruParameters<double>&, int64_t, int64_t, double*, double*,
                                               double*, double*);
template void lru_parameterize_backward<float>(const LruParameters<float>&, int64_t, int64_t, const float*,
                                               const float*, const float*, const float*,
                                               const LruParameterGradients<float>&);
template void lru_parameterize_backward<double>(const LruParameters<double>&, int64_t, int64_t, const double*,
                                                const double*, const double*, const double*,
                                                const LruParameterGradients<double>&);

template <class T>
T cross_entropy_forward(const T* logits, const int64_t* labels, int64_t batch, int64_t classes, T* row_lse,
                        int64_t& correct) {
  T sum = 0;
  correct = 0;
  for (int64_t b = 0; b < batch; ++b) {
    bool hit = false;
    sum += cross_entropy_row(logits + b * classes, classes, labels[b], row_lse[b], hit);
    correct += hit ? 1 : 0;
  }
  return sum / static_cast<T>(batch);
}

template <class T>
void cross_entropy_backward(const T* logits, const int64_t* labels, const T* row_lse, int64_t batch,
                            int64_t classes, T grad_loss, T* grad_logits) {
  const T scale = grad_loss / static_cast<T>(batch);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < classes; ++c) {
      const int64_t i = b * classes + c;
      grad_logits[i] = cross_entropy_gradient(logits[i], row_lse[b], labels[b] == c, scale);
    }
}

template float cross_entropy_forward<float>(const float*, const int64_t*, int64_t, int64_t, float*, int64_t&);
template double cross_entropy_forward<double>(const double*, const int64_t*, int64_t, int64_t, double*, int64_t&);
template void cross_entropy_backward<float>(const float*, const int64_t*, const float*, int64_t, int64_t, float,
                                            float*);
template void cross_entropy_backward<double>(const double*, const int64_t*, const double*, int64_t, int64_t, double,
                                             double*);

template <class V>
void lru_skip_forward(const V* cx, const float* D, const float* u, float* out, int64_t rows, int64_t hidden,
                      int64_t parts) {
  const int64_t n = rows * hidden;
  for_each_element(rows, hidden, [&](int64_t i, int64_t h) {
    const float y = sum_in_order(parts, [&](int64_t s) { return static_cast<float>(cx[s * n + i]); });
    out[i] = lru_skip(y, D[h], u[i]);
  });
}

// Runs element(i, h, acc) over every element of a {rows, hidden} tensor, in
// lru_skip_parts(rows) parts of rows (in parallel); element adds its shares of
// K per-column sums to acc[k * hidden] (its part's own accumulators). Then
// the parts are added in part order into column_sums[k]. Fixed parts and
// order: the same sums for any thread count, and the order the CUDA kernels use.
template <int K, class Element>
void sum_columns_by_parts(int64_t rows, int64_t hidden, const std::array<float*, K>& column_sums,
                          const Element& element) {
  const int64_t parts = lru_skip_parts(rows);
  std::vector<float> sums(parts * K * hidden, 0.f);
  for_each_row_part(rows, [&](int64_t p, int64_t first, int64_t last) {
    float* acc = sums.data() + p * K * hidden;
    for (int64_t r = first; r < last; ++r)
      for (int64_t h = 0; h < hidden; ++h) element(r * hidden + h, h, acc + h);
  });
  for (int k = 0; k < K; ++k)
    for (int64_t h = 0; h < hidden; ++h) {
      float total = 0.f;
      for (int64_t p = 0; p < parts; ++p) total += sums[(p * K + k) * hidden + h];
      column_sums[k][h] = total;
    }
}

template <class V>
void lru_skip_backward(const float* grad_y, const float* u, const V* grad_u_gemm, const float* D, float* grad_u,
                       float* grad_D, int64_t rows, int64_t hidden) {
  sum_columns_by_parts<1>(rows, hidden, {grad_D}, [&](int64_t i, int64_t h, float* sum) {
    sum[0] = sum[0] + grad_y[i] * u[i];
    grad_u[i] = lru_skip(static_cast<float>(grad_u_gemm[i]), D[h], grad_y[i]);
  });
}

template <class V>
void lru_skip_gelu_forward(const V* cx, const float* D, NormInput u, V* g, int64_t rows, int64_t hidden,
                           const uint8_t* keep, double scale) {
  const float s = static_cast<float>(scale);
  for_each_element(rows, hidden, [&](int64_t i, int64_t h) {
    g[i] = static_cast<V>(skip_gelu(static_cast<float>(cx[i]), D[h], input_at(u, i, h), dropout_factor(keep, i, s)));
  });
}

template <class V>
void lru_skip_gelu_backward(const V* grad_g, const V* cx, const float* D, NormInput u, const float* grad_out,
                            V* grad_cx, float* grad_skip, float* sums, int64_t rows, int64_t hidden,
                            const uint8_t* keep, double scale) {
  const float s = static_cast<float>(scale);
  const auto element = [&](int64_t i, int64_t h, float* acc) {
    const float ui = input_at(u, i, h);
    const float gp = skip_gelu_gradient(static_cast<float>(cx[i]), D[h], ui, dropout_factor(keep, i, s),
                                        static_cast<float>(grad_g[i]));
    grad_cx[i] = static_cast<V>(gp);
    grad_skip[i] = skip_input_gradient(grad_out ? grad_out[i] : 0.f, D[h], gp, u, h);
    acc[0] = acc[0] + gp * ui;
    if (u.mean) acc[hidden] = acc[hidden] + gp;
  };
  if (u.mean)
    sum_columns_by_parts<2>(rows, hidden, {sums, sums + hidden}, element);
  else
    sum_columns_by_parts<1>(rows, hidden, {sums}, element);
}

template <class V>
void lru_bf16_pack(const float* lambda_re, const float* lambda_im, const float* B_re, const float* B_im,
                   const float* C_re, const float* C_im, int64_t state, int64_t padded, int64_t hidden, float* lambda,
                   V* w_in, V* w_out) {
  for_each_element(state, hidden, [&](int64_t i, int64_t) {
    int64_t in_re, out_re;
    lru_bf16_pack_indices(i, state, padded, hidden, in_re, out_re);
    w_in[in_re] = static_cast<V>(B_re[i]);
    w_in[in_re + hidden] = static_cast<V>(B_im[i]);
    w_out[out_re] = static_cast<V>(C_re[i]);
    w_out[out_re + 1] = static_cast<V>(-C_im[i]);
  });
  for (int64_t n = 0; n < padded; ++n) {
    lambda[2 * n] = n < state ? lambda_re[n] : 0.f;
    lambda[2 * n + 1] = n < state ? lambda_im[n] : 0.f;
  }
  // the padding's zero states: w_in's last 2 (P - N) rows, w_out's last 2 (P - N) columns
  std::fill(w_in + 2 * state * hidden, w_in + 2 * padded * hidden, V(0.f));
  for (int64_t h = 0; h < hidden; ++h)
    std::fill(w_out + h * 2 * padded + 2 * state, w_out + (h + 1) * 2 * padded, V(0.f));
}

template <class V>
void lru_bf16_unpack_gradients(const V* grad_w_in, const V* grad_w_out, const float* lambda_rows, int64_t rows,
                               int64_t state, int64_t padded, int64_t hidden, float* grad_lambda_re,
                               float* grad_lambda_im, float* grad_B_re, float* grad_B_im, float* grad_C_re,
                               float* grad_C_im) {
  for_each_element(state, hidden, [&](int64_t i, int64_t) {
    int64_t in_re, out_re;
    lru_bf16_pack_indices(i, state, padded, hidden, in_re, out_re);
    grad_B_re[i] = static_cast<float>(grad_w_in[in_re]);
    grad_B_im[i] = static_cast<float>(grad_w_in[in_re + hidden]);
    grad_C_re[i] = static_cast<float>(grad_w_out[out_re]);
    grad_C_im[i] = -static_cast<float>(grad_w_out[out_re + 1]);
  });
  for (int64_t n = 0; n < state; ++n) {
    grad_lambda_re[n] = sum_in_order(rows, [&](int64_t r) { return lambda_rows[(r * padded + n) * 2]; });
    grad_lambda_im[n] = sum_in_order(rows, [&](int64_t r) { return lambda_rows[(r * padded + n) * 2 + 1]; });
  }
}

template void lru_bf16_pack<c10::BFloat16>(const float*, const float*, const float*, const float*, const float*,
                                           const float*, int64_t, int64_t, int64_t, float*, c10::BFloat16*,
                                           c10::BFloat16*);
template void lru_bf16_unpack_gradients<c10::BFloat16>(const c10::BFloat16*, const c10::BFloat16*, const float*,
                                                       int64_t, int64_t, int64_t, int64_t, float*, float*, float*,
                                                       float*, float*, float*);

void column_moments(const float* x, int64_t rows, int64_t hidden, float eps, float* mean, float* var,
                    float* invstd, const RunningStats& running) {
  const int64_t parts = lru_skip_parts(rows);
  std::vector<float> part_mean(parts * hidden, 0.f), part_m2(parts * hidden, 0.f);
  for_each_row_part(rows, [&](int64_t p, int64_t first, int64_t last) {
    float *m = part_mean.data() + p * hidden, *m2 = part_m2.data() + p * hidden;
    for (int64_t r = first; r < last; ++r)
      for (int64_t h = 0; h < hidden; ++h) {
        float count = static_cast<float>(r - first);  // rows of the part before r, as in each column
        welford_add(x[r * hidden + h], count, m[h], m2[h]);
      }
  });
  for (int64_t h = 0; h < hidden; ++h) {
    float count = 0.f, m = 0.f, m2 = 0.f;
    for (int64_t p = 0; p < parts; ++p)
      moments_merge(count, m, m2, static_cast<float>(lru_skip_part_size(rows, p)), part_mean[p * hidden + h],
                    part_m2[p * hidden + h]);
    mean[h] = m;
    var[h] = rows > 0 ? m2 / static_cast<float>(rows) : 0.f;
    invstd[h] = 1.f / std::sqrt(var[h] + eps);
    update_running_stats(running, h, mean[h], var[h]);
  }
}

template <class V>
void batch_norm_cast(const float* x, const float* mean, const float* invstd, V* out, int64_t rows, int64_t hidden) {
  for_each_element(rows, hidden,
                   [&](int64_t i, int64_t h) { out[i] = static_cast<V>(batch_norm(x[i], mean[h], invstd[h])); });
}

template <class V>
void batch_norm_backward(float* grad_x, const V* grad_u_gemm, NormInput u, const float* D, const float* skip_sums,
                         int64_t rows, int64_t hidden) {
  std::vector<float> mean_dz(hidden), mean_dz_u(hidden);
  sum_columns_by_parts<2>(rows, hidden, {mean_dz.data(), mean_dz_u.data()}, [&](int64_t i, int64_t h, float* acc) {
    const float g = static_cast<float>(grad_u_gemm[i]);
    acc[0] = acc[0] + g;
    acc[hidden] = acc[hidden] + g * input_at(u, i, h);
  });
  const float inv_rows = 1.f / static_cast<float>(rows);
  for (int64_t h = 0; h < hidden; ++h)
    batch_norm_gradient_means(D[h], skip_sums[hidden + h], skip_sums[h], mean_dz[h], mean_dz_u[h], inv_rows,
                              mean_dz[h], mean_dz_u[h]);
  for_each_element(rows, hidden, [&](int64_t i, int64_t h) {
    grad_x[i] = batch_norm_gradient(grad_x[i], static_cast<float>(grad_u_gemm[i]), input_at(u, i, h), u.invstd[h],
                                    mean_dz[h], mean_dz_u[h]);
  });
}

template void batch_norm_cast<float>(const float*, const float*, const float*, float*, int64_t, int64_t);
template void batch_norm_cast<c10::BFloat16>(const float*, const float*, const float*, c10::BFloat16*, int64_t,
                                             int64_t);
template void batch_norm_backward<float>(float*, const float*, NormInput, const float*, const float*, int64_t,
                                         int64_t);
template void batch_norm_backward<c10::BFloat16>(float*, const c10::BFloat16*, NormInput, const float*, const float*,
                                                 int64_t, int64_t);

template void lru_skip_gelu_forward<float>(const float*, const float*, NormInput, float*, int64_t, int64_t,
                                           const uint8_t*, double);
template void lru_skip_gelu_forward<c10::BFloat16>(const c10::BFloat16*, const float*, NormInput, c10::BFloat16*,
                                                   int64_t, int64_t, const uint8_t*, double);
template void lru_skip_gelu_backward<float>(const float*, const float*, const float*, NormInput, const float*, float*,
                                            float*, float*, int64_t, int64_t, const uint8_t*, double);
template void lru_skip_gelu_backward<c10::BFloat16>(const c10::BFloat16*, const c10::BFloat16*, const float*,
                                                    NormInput, const float*, c10::BFloat16*, float*, float*, int64_t,
                                                    int64_t, const uint8_t*, double);

template void lru_skip_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void lru_skip_forward<c10::BFloat16>(const c10::BFloat16*, const float*, const float*, float*, int64_t,
                                              int64_t, int64_t);
template void lru_skip_backward<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                       int64_t);
template void lru_skip_backward<c10::BFloat16>(const float*, const float*, const c10::BFloat16*, const float*, float*,
                                               float*, int64_t, int64_t);

#define COMPRESSM_INSTANTIATE(Y, Z)                                                                          \
  template void gelu_dropout_forward<Y, Z>(const Y*, Z*, int64_t, const uint8_t*, double);                   \
  template void gelu_dropout_backward<Y, Z>(const Y*, const Z*, Y*, int64_t, const uint8_t*, double);        \
  template void glu_residual_forward<Z, Y>(const Z*, const Y*, Y*, int64_t, int64_t, const uint8_t*, double,  \
                                           const Y*);                                                         \
  template void glu_residual_backward<Z, Y>(const Z*, const Y*, Z*, int64_t, int64_t, const uint8_t*, double, \
                                            const Y*);

COMPRESSM_INSTANTIATE(float, float)
COMPRESSM_INSTANTIATE(double, double)
COMPRESSM_INSTANTIATE(float, c10::BFloat16)
#undef COMPRESSM_INSTANTIATE

}  // namespace compressm::kernels::elementwise
