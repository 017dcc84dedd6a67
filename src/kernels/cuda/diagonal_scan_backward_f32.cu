// Diagonal scan backward, complex64 (lru_cuda.h):
//   g_k = grad_x_k + conj(lambda) g_{k+1} (g_L = 0),  grad_u_k = g_k,
//   grad_lambda_rows[b] = sum_k g_k conj(x_{k-1})  (x_{-1} = 0).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSteps = 16;  // time steps loaded per round trip (see the forward kernel)

// grad_u may alias grad_x: each element is read before it is written, by the same thread.
__global__ void __launch_bounds__(kThreads)
    scan_backward_kernel(const float2* __restrict__ lambda, const float2* __restrict__ x, const float2* grad_x,
                         float2* grad_u, float2* __restrict__ grad_lambda_rows, long long batch, long long length,
                         long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const float2 l = lambda[n];
  const long long base = b * length * state + n;
  const float2* gxp = grad_x + base;
  const float2* xp = x + base;
  float2* gup = grad_u + base;
  float2 g = make_float2(0.f, 0.f), sum = make_float2(0.f, 0.f);
  long long t = length - 1;  // the latest step not yet done
  // Rounds of kSteps steps t0 .. t0 + kSteps - 1, backwards, while t0 >= 1
  // (x_{t0 - 1} exists); the first steps go one by one below.
  for (; t - kSteps + 1 >= 1; t -= kSteps) {
    const long long t0 = t - kSteps + 1;
    float2 gv[kSteps], xv[kSteps];
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      gv[k] = gxp[(t0 + k) * state];
      xv[k] = xp[(t0 + k - 1) * state];
    }
#pragma unroll
    for (int k = kSteps - 1; k >= 0; --k) {
      g = detail::complex_add(gv[k], detail::conj_mul(l, g));
      gv[k] = g;
      sum = detail::complex_add(sum, detail::conj_mul(xv[k], g));
    }
#pragma unroll
    for (int k = 0; k < kSteps; ++k) gup[(t0 + k) * state] = gv[k];
  }
  for (; t >= 0; --t) {
    g = detail::complex_add(gxp[t * state], detail::conj_mul(l, g));
    gup[t * state] = g;
    if (t > 0) sum = detail::complex_add(sum, detail::conj_mul(xp[(t - 1) * state], g));
  }
  grad_lambda_rows[b * state + n] = sum;
}

}  // namespace

void diagonal_scan_backward(const float* lambda, const float* x, const float* grad_x, float* grad_u,
                            float* grad_lambda_rows, ScanShape shape, Stream stream) {
  const long long rows = shape.batch * shape.state;
  if (rows == 0) return;
  COMPRESSM_LAUNCH(scan_backward_kernel, detail::blocks_for(rows, kThreads), kThreads, stream)(
      reinterpret_cast<const float2*>(lambda), reinterpret_cast<const float2*>(x),
      reinterpret_cast<const float2*>(grad_x), reinterpret_cast<float2*>(grad_u),
      reinterpret_cast<float2*>(grad_lambda_rows), shape.batch, shape.length, shape.state);
  detail::check_launch("diagonal_scan_backward (CUDA)");
}

}  // namespace compressm::kernels::cuda
