// Small device helpers shared by the .cu files of src/kernels/cuda.
#pragma once

#include <cuda_runtime.h>

// kernel<<<grid, block, 0, stream>>>(args...) is written
// COMPRESSM_LAUNCH(kernel, grid, block, stream)(args...): under
// tests/kernels/cuda_emulator (whose cuda_runtime.h stands in for CUDA's)
// the same source launches on the CPU emulator.
#if defined(COMPRESSM_CUDA_EMULATION)
#define COMPRESSM_LAUNCH(kernel, grid, block, stream) COMPRESSM_EMULATED_LAUNCH(kernel, grid, block, stream)
#else
#define COMPRESSM_LAUNCH(kernel, grid, block, stream) kernel<<<(grid), (block), 0, (stream)>>>
#endif

#include <stdexcept>
#include <string>

namespace compressm::kernels::cuda::detail {

// Complex64 as float2 (x = re, y = im).
__device__ __forceinline__ float2 complex_mul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
// conj(a) * b
__device__ __forceinline__ float2 conj_mul(float2 a, float2 b) {
  return make_float2(a.x * b.x + a.y * b.y, a.x * b.y - a.y * b.x);
}
__device__ __forceinline__ float2 complex_add(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
// base^exponent by squaring (exponent >= 0).
__device__ __forceinline__ float2 complex_power(float2 base, long long exponent) {
  float2 result = make_float2(1.f, 0.f);
  for (; exponent > 0; exponent >>= 1) {
    if (exponent & 1) result = complex_mul(result, base);
    base = complex_mul(base, base);
  }
  return result;
}

inline void check_launch(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(error));
}

inline unsigned int blocks_for(long long threads, int per_block) {
  return static_cast<unsigned int>((threads + per_block - 1) / per_block);
}

}  // namespace compressm::kernels::cuda::detail
