// The mix stage of a narrow LRU block on the CPU, as one pass over memory
// each way (docs/design.md §1; nn::narrow_mix is the autograd op):
//
//   g   = dropout_1(GELU(y))                 (GELU with erf)
//   [v | a] = g W^T + b                      W {2H, H}: the GLU's value layer, then its gate layer
//   out = x + dropout_2(v .* sigmoid(a))
//
// y, x, out {rows, H}, H <= kMaxHidden. LibTorch runs this as ~10 ops, each
// a pass over {rows, H} (two of them Bernoulli draws into float tensors),
// plus two GEMMs of shape {rows, H} x {H, H}: at the sMNIST shape (H = 8,
// 39,200 rows) the stage cost a third of the block's training step. Here
// the rows go through in tiles of 64 that stay in L1: the GELU and sigmoid
// vectorised (Eigen's float erf and exp), the 2H x H product in registers.
// The backward pass recomputes g, v and a from y (nothing but y and the
// masks is kept) and sums dL/dW and dL/db over fixed parts of rows, added in
// part order: the result does not depend on the thread count.
// No LibTorch header (at::parallel_for in the .cpp).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace compressm::kernels::narrow_mix {

constexpr int64_t kMaxHidden = 16;

// Calls f(std::integral_constant<int, h>{}) for 1 <= h <= kMaxHidden (every
// width instantiated: the CPU loops' fixed-width products, the CUDA
// kernels' registers); std::invalid_argument naming `what` otherwise.
template <int H = 1, class F>
void with_hidden(int64_t h, const char* what, const F& f) {
  if constexpr (H <= kMaxHidden) {
    if (h == H) return f(std::integral_constant<int, H>{});
    return with_hidden<H + 1>(h, what, f);
  }
  throw std::invalid_argument(std::string(what) + ": H must be in [1, " + std::to_string(kMaxHidden) + "], got " +
                              std::to_string(h));
}

template <class T>
struct Weights {
  const T* weight;  // {2H, H}, row-major (torch::nn::Linear's {out, in}): rows < H value, rows >= H gate
  const T* bias;    // {2H}
};

// Dropout keep masks ({rows, H} uint8, 1 = kept; null = no dropout) and the
// kept elements' scale 1 / (1 - p).
struct Dropout {
  const uint8_t* keep_gelu;
  const uint8_t* keep_glu;
  double scale;
};

template <class T>
void forward(const T* y, const T* x, Weights<T> w, Dropout d, T* out, int64_t rows, int64_t hidden);

// dL/dy {rows, H}, dL/dW {2H, H} and dL/db {2H} (overwritten) from dL/dout;
// dL/dx is dL/dout itself.
template <class T>
void backward(const T* y, Weights<T> w, Dropout d, const T* grad_out, T* grad_y, T* grad_weight, T* grad_bias,
              int64_t rows, int64_t hidden);

}  // namespace compressm::kernels::narrow_mix
