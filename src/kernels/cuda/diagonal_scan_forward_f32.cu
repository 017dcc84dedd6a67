// Diagonal scan forward, complex64 (lru_cuda.h).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {
namespace {

constexpr int kThreads = 256;
// Time steps loaded per round trip to memory: the loads of a round are
// independent of the recurrence, so kSteps of them are in flight at once
// instead of one (a thread's scan is otherwise bound by memory latency, not
// bandwidth: B x N threads are too few to hide it).
constexpr int kSteps = 16;

// One thread per (b, n); consecutive threads take consecutive n (coalesced).
__global__ void __launch_bounds__(kThreads)
    scan_forward_kernel(const float2* __restrict__ lambda, const float2* __restrict__ u, float2* x, long long batch,
                        long long length, long long state) {
  const long long index = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= batch * state) return;
  const long long b = index / state, n = index % state;
  const float2 l = lambda[n];
  const float2* up = u + b * length * state + n;
  float2* xp = x + b * length * state + n;
  float2 s = make_float2(0.f, 0.f);
  long long t = 0;
  for (; t + kSteps <= length; t += kSteps) {
    float2 v[kSteps];
#pragma unroll
    for (int k = 0; k < kSteps; ++k) v[k] = up[(t + k) * state];
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      s = detail::complex_add(detail::complex_mul(l, s), v[k]);
      v[k] = s;
    }
#pragma unroll
    for (int k = 0; k < kSteps; ++k) xp[(t + k) * state] = v[k];
  }
  for (; t < length; ++t) {
    s = detail::complex_add(detail::complex_mul(l, s), up[t * state]);
    xp[t * state] = s;
  }
}

}  // namespace

void diagonal_scan_forward(const float* lambda, const float* u, float* x, ScanShape shape, Stream stream) {
  const long long rows = shape.batch * shape.state;
  if (rows == 0 || shape.length == 0) return;
  COMPRESSM_LAUNCH(scan_forward_kernel, detail::blocks_for(rows, kThreads), kThreads, stream)(
      reinterpret_cast<const float2*>(lambda), reinterpret_cast<const float2*>(u), reinterpret_cast<float2*>(x),
      shape.batch, shape.length, shape.state);
  detail::check_launch("diagonal_scan_forward (CUDA)");
}

}  // namespace compressm::kernels::cuda
