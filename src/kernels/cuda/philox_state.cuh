// The (seed, offset) a kernel draws under, from a PhiloxSeed
// (dropout_cuda.h): the values, or this replay's values behind the
// pointers of a captured state.
#pragma once

#include <cstdint>

#include "kernels/cuda/dropout_cuda.h"

namespace compressm::kernels::cuda::detail {

__device__ __forceinline__ void philox_values(const PhiloxSeed& s, uint64_t& seed, uint64_t& offset) {
  if (s.seed_ptr != nullptr) {  // captured in a CUDA graph
    seed = static_cast<uint64_t>(*s.seed_ptr);
    offset = static_cast<uint64_t>(*s.offset_ptr) + s.offset_intragraph;
  } else {
    seed = s.seed;
    offset = s.offset;
  }
}

}  // namespace compressm::kernels::cuda::detail
