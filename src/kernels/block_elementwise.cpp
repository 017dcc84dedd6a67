// CPU loops of block_elementwise.h: each element computed in the precision of
// Y / X (float or double), the GEMM side stored as Z / V.
#include "kernels/block_elementwise.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

namespace compressm::kernels::elementwise {
namespace {

// Elements per task: enough work to pay for waking a thread.
constexpr int64_t kGrain = 1 << 15;

}  // namespace

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
                          double scale) {
  const X s = static_cast<X>(scale);
  at::parallel_for(0, rows, kGrain / hidden + 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const V* value = vg + r * 2 * hidden;
      const V* gate = value + hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const int64_t i = r * hidden + j;
        out[i] = glu_output(x[i], static_cast<X>(value[j]), static_cast<X>(gate[j]), dropout_factor(keep, i, s));
      }
    }
  });
}

template <class V, class X>
void glu_residual_backward(const V* vg, const X* grad_out, V* grad_vg, int64_t rows, int64_t hidden,
                           const uint8_t* keep, double scale) {
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
        glu_gradients(static_cast<X>(value[j]), static_cast<X>(gate[j]), dropout_factor(keep, i, s), grad_out[i],
                      gv, gg);
        grad_value[j] = static_cast<V>(gv);
        grad_gate[j] = static_cast<V>(gg);
      }
    }
  });
}

#define COMPRESSM_INSTANTIATE(Y, Z)                                                                          \
  template void gelu_dropout_forward<Y, Z>(const Y*, Z*, int64_t, const uint8_t*, double);                   \
  template void gelu_dropout_backward<Y, Z>(const Y*, const Z*, Y*, int64_t, const uint8_t*, double);        \
  template void glu_residual_forward<Z, Y>(const Z*, const Y*, Y*, int64_t, int64_t, const uint8_t*, double); \
  template void glu_residual_backward<Z, Y>(const Z*, const Y*, Z*, int64_t, int64_t, const uint8_t*, double);

COMPRESSM_INSTANTIATE(float, float)
COMPRESSM_INSTANTIATE(double, double)
COMPRESSM_INSTANTIATE(float, c10::BFloat16)
#undef COMPRESSM_INSTANTIATE

}  // namespace compressm::kernels::elementwise
