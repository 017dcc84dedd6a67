// dropout_cuda.h: the keep-mask kernel.
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/philox_state.cuh"
#include "kernels/philox.h"

namespace compressm::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per group of four elements (grid-stride): the group's Philox
// block decides its four bytes, stored as one little-endian 32-bit word
// (byte k = element 4 g + k); a last partial group byte by byte.
__global__ void __launch_bounds__(kThreads)
    draw_keep_mask_kernel(uint8_t* __restrict__ keep, long long n, PhiloxSeed philox, uint64_t threshold) {
  uint64_t seed = 0, offset = 0;
  detail::philox_values(philox, seed, offset);
  const long long groups = (n + 3) / 4;
  for (long long g = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; g < groups;
       g += static_cast<long long>(gridDim.x) * blockDim.x) {
    const philox::Words w = philox::generator_words(seed, offset, static_cast<uint64_t>(g));
    uint32_t packed = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) packed |= static_cast<uint32_t>(w.w[k] < threshold) << (8 * k);
    if (4 * g + 4 <= n) {
      reinterpret_cast<uint32_t*>(keep)[g] = packed;
    } else {
      for (long long i = 4 * g; i < n; ++i) keep[i] = static_cast<uint8_t>((packed >> (8 * (i - 4 * g))) & 1u);
    }
  }
}

}  // namespace

void draw_keep_mask(uint8_t* keep, int64_t n, const PhiloxSeed& philox, uint64_t threshold, Stream stream) {
  if (n < 0) throw std::invalid_argument("draw_keep_mask (CUDA): negative element count");
  if (reinterpret_cast<uintptr_t>(keep) % 4 != 0)
    throw std::invalid_argument("draw_keep_mask (CUDA): the mask must be 4-byte aligned");
  if ((philox.seed_ptr == nullptr) != (philox.offset_ptr == nullptr))
    throw std::invalid_argument("draw_keep_mask (CUDA): a captured Philox state needs both pointers");
  if (n == 0) return;
  const unsigned int blocks = detail::blocks_for((n + 3) / 4, kThreads);
  COMPRESSM_LAUNCH(draw_keep_mask_kernel, blocks < 4096u ? blocks : 4096u, kThreads, stream)(keep, n, philox,
                                                                                            threshold);
  detail::check_launch("draw_keep_mask (CUDA)");
}

}  // namespace compressm::kernels::cuda
