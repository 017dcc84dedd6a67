// The LRU's diagonal linear recurrence on the CPU, forward and backward.
// Plain arrays in, plain arrays out: no tensors, no autograd (the autograd
// wrapper is src/nn/diagonal_scan_function.h). Complex numbers are stored
// interleaved (re, im), i.e. the layout of std::complex<T> and c10::complex<T>.
#pragma once

#include <complex>
#include <cstdint>

namespace compressm::kernels {

struct ScanShape {
  int64_t batch = 0;   // B
  int64_t length = 0;  // L
  int64_t state = 0;   // N
};

// x_k = lambda .* x_{k-1} + u_k with x_{-1} = 0.
// lambda {N}, u {B, L, N}, x {B, L, N}; all contiguous. x may alias u.
template <class T>
void diagonal_scan_forward(const std::complex<T>* lambda, const std::complex<T>* u,
                           std::complex<T>* x, ScanShape shape);

// Reverse-mode for the scan, with PyTorch's convention for complex gradients
// (the conjugate Wirtinger derivative of a real loss):
//   g_k = grad_x_k + conj(lambda) .* g_{k+1}        (g_L = 0)
//   grad_u_k = g_k
//   grad_lambda = sum_{b,k} g_k .* conj(x_{k-1})   (x_{-1} = 0)
// x {B, L, N} from the forward pass, grad_x {B, L, N}; writes grad_u {B, L, N}
// (may alias grad_x) and grad_lambda {N}.
template <class T>
void diagonal_scan_backward(const std::complex<T>* lambda, const std::complex<T>* x,
                            const std::complex<T>* grad_x, std::complex<T>* grad_u,
                            std::complex<T>* grad_lambda, ScanShape shape);

}  // namespace compressm::kernels
