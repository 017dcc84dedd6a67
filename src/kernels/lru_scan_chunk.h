// The diagonal scan and its adjoint over one time chunk, on rows in the fused
// layer's layout [re(0..n) | im(0..n)] (row length 2n, n a multiple of the
// vector width). Blocks of states run down the whole chunk with the running
// state in registers; independent blocks hide the latency of the recurrence.
#pragma once

#include <cstdint>

#include "kernels/small_gemm.h"

namespace compressm::kernels {

// x_t = lambda .* x_{t-1} + v_t for t in [0, len): v_t is row t of `x` on entry,
// x_t on exit; `start` is x_{-1}.
template <class T, int kBlock>
void scan_block_forward(const T* lambda, const T* start, T* x, int64_t len, int64_t n, int64_t j) {
  using small_gemm::load;
  using small_gemm::store;
  using V = typename small_gemm::Vec<T>::type;
  constexpr int64_t W = small_gemm::Vec<T>::width;
  V lr[kBlock], li[kBlock], pr[kBlock], pi[kBlock];
  for (int b = 0; b < kBlock; ++b) {
    lr[b] = load(lambda + j + b * W), li[b] = load(lambda + n + j + b * W);
    pr[b] = load(start + j + b * W), pi[b] = load(start + n + j + b * W);
  }
  for (int64_t t = 0; t < len; ++t) {
    T* row = x + t * 2 * n + j;
    for (int b = 0; b < kBlock; ++b) {
      // Two dependent multiply-adds per step (not three): (v - li pi) + lr pr.
      const V nr = (load(row + b * W) - li[b] * pi[b]) + lr[b] * pr[b];
      const V ni = (load(row + n + b * W) + li[b] * pr[b]) + lr[b] * pi[b];
      pr[b] = nr, pi[b] = ni;
      store(row + b * W, nr), store(row + n + b * W, ni);
    }
  }
}

template <class T>
void scan_chunk_forward(const T* lambda, const T* start, T* x, int64_t len, int64_t n) {
  constexpr int64_t W = small_gemm::Vec<T>::width;
  int64_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) scan_block_forward<T, 4>(lambda, start, x, len, n, j);
  for (; j < n; j += W) scan_block_forward<T, 1>(lambda, start, x, len, n, j);
}

// Adjoint of the scan for t = len-1 .. 0 (real and imaginary parts of the
// gradient of a real loss, i.e. PyTorch's convention for complex tensors):
//   G_t = a_t + conj(lambda) .* G_{t+1}            (a_t: row t of `adjoint`, becomes G_t)
//   dL/dlambda += G_t .* conj(x_{t-1})             (x_{-1} = `start`)
// `carry` is G_len on entry and G_0 on exit.
template <class T, int kBlock>
void scan_block_adjoint(const T* lambda, T* carry, T* adjoint, const T* x, const T* start, T* grad_lambda,
                        int64_t len, int64_t n, int64_t j) {
  using small_gemm::load;
  using small_gemm::store;
  using V = typename small_gemm::Vec<T>::type;
  constexpr int64_t W = small_gemm::Vec<T>::width;
  V lr[kBlock], li[kBlock], cr[kBlock], ci[kBlock], sr[kBlock], si[kBlock];
  for (int b = 0; b < kBlock; ++b) {
    lr[b] = load(lambda + j + b * W), li[b] = load(lambda + n + j + b * W);
    cr[b] = load(carry + j + b * W), ci[b] = load(carry + n + j + b * W);
    sr[b] = load(grad_lambda + j + b * W), si[b] = load(grad_lambda + n + j + b * W);
  }
  for (int64_t t = len - 1; t >= 0; --t) {
    T* row = adjoint + t * 2 * n + j;
    const T* prev = (t > 0 ? x + (t - 1) * 2 * n : start) + j;
    for (int b = 0; b < kBlock; ++b) {
      const V gr = load(row + b * W) + lr[b] * cr[b] + li[b] * ci[b];
      const V gi = load(row + n + b * W) + lr[b] * ci[b] - li[b] * cr[b];
      cr[b] = gr, ci[b] = gi;
      store(row + b * W, gr), store(row + n + b * W, gi);
      const V xr = load(prev + b * W), xi = load(prev + n + b * W);
      sr[b] = (sr[b] + gr * xr) + gi * xi;  // two multiply-adds each
      si[b] = (si[b] + gi * xr) - gr * xi;
    }
  }
  for (int b = 0; b < kBlock; ++b) {
    store(carry + j + b * W, cr[b]), store(carry + n + j + b * W, ci[b]);
    store(grad_lambda + j + b * W, sr[b]), store(grad_lambda + n + j + b * W, si[b]);
  }
}

template <class T>
void scan_chunk_adjoint(const T* lambda, T* carry, T* adjoint, const T* x, const T* start, T* grad_lambda,
                        int64_t len, int64_t n) {
  constexpr int64_t W = small_gemm::Vec<T>::width;
  int64_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) scan_block_adjoint<T, 4>(lambda, carry, adjoint, x, start, grad_lambda, len, n, j);
  for (; j < n; j += W) scan_block_adjoint<T, 1>(lambda, carry, adjoint, x, start, grad_lambda, len, n, j);
}

}  // namespace compressm::kernels
