// The whole LRU layer (docs/design.md §1) as one CPU kernel, forward and backward,
// without ever writing the {B, L, N} complex state to memory:
//   x_k = lambda .* x_{k-1} + Bt u_k   (x_{-1} = 0)
//   y_k = Re(C x_k) + D .* u_k
// Each batch row is processed in chunks of time: input projection, scan and
// output projection run on a cache-resident block. The forward pass keeps only
// the state at each chunk boundary; the backward pass recomputes a chunk's
// states from its boundary and runs the adjoint scan over it in reverse.
// Plain arrays, no tensors, no autograd (wrapper: src/nn/lru_layer_function.h).
// Real parameters (lambda, Bt, C as re/im pairs) so every gradient is the
// ordinary derivative of a real loss.
#pragma once

#include <cstdint>

namespace compressm::kernels {

struct LruShape {
  int64_t batch = 0;   // B
  int64_t length = 0;  // L
  int64_t state = 0;   // N
  int64_t hidden = 0;  // H
};

// All contiguous, row-major.
template <class T>
struct LruWeights {
  const T* lambda_re;  // {N}
  const T* lambda_im;  // {N}
  const T* B_re;       // {N, H}, the normalised Bt = diag(gamma) (B_re + i B_im)
  const T* B_im;       // {N, H}
  const T* C_re;       // {H, N}
  const T* C_im;       // {H, N}
  const T* D;          // {H}
};

// dL/d of each LruWeights field and of u; same shapes; overwritten.
template <class T>
struct LruGradients {
  T *lambda_re, *lambda_im, *B_re, *B_im, *C_re, *C_im, *D, *u;
};

// Elements of the chunk-boundary buffer the forward pass fills for backward.
int64_t lru_checkpoint_size(LruShape shape);

// u {B, L, H} -> y {B, L, H}. `checkpoints` (lru_checkpoint_size elements) may
// be null when no backward pass follows.
template <class T>
void lru_layer_forward(const LruWeights<T>& w, const T* u, T* y, T* checkpoints, LruShape shape);

// Given dL/dy {B, L, H}, the forward inputs and its checkpoints, writes all
// gradients. Batch rows run in parallel (at::parallel_for) in a fixed number
// of parts whose partial gradients are summed in a fixed order: the result
// does not depend on the thread count.
template <class T>
void lru_layer_backward(const LruWeights<T>& w, const T* u, const T* checkpoints, const T* grad_y,
                        const LruGradients<T>& grad, LruShape shape);

}  // namespace compressm::kernels
