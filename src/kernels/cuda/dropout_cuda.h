// Dropout keep masks drawn on a CUDA device from LibTorch's CUDA generator
// state, and that state as the kernels take it. The draws are
// philox::generator_keeps (kernels/philox.h): element i is word i % 4 of
// the Philox4x32-10 block at counter (offset / 4, i / 4) under key `seed`,
// the counter curand_init(seed, i / 4, offset) starts from. A kernel that
// draws element i anywhere (this mask kernel, narrow_mix's kernels) gets
// the same bit, and a launch that took the state with philox_cuda_state(4)
// stays inside the counters it reserved.
#pragma once

#include <cstdint>

#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {

// LibTorch's CUDA generator state for one launch (at::PhiloxCudaState):
// the values, or (captured in a CUDA graph) device pointers to the seed and
// the offset, to which offset_intragraph is added; the kernels read those
// on each replay, so that each replay draws new bits.
struct PhiloxSeed {
  uint64_t seed = 0, offset = 0;
  const int64_t* seed_ptr = nullptr;
  const int64_t* offset_ptr = nullptr;
  uint32_t offset_intragraph = 0;
};

// keep[i] = 1 if philox::generator_keeps(seed, offset, i, threshold), else
// 0, for i < n (uint8; threshold = philox::keep_threshold(1 - p)). One
// thread per four elements: one Philox call and one 32-bit store (keep
// must be 4-byte aligned). LibTorch's bernoulli_ took 59 us for a
// {50, 1024, 512} mask on an H200 (run 6, ncu; its uniform float path,
// compute-bound), two per wide block and step.
void draw_keep_mask(uint8_t* keep, int64_t n, const PhiloxSeed& philox, uint64_t threshold, Stream stream);

}  // namespace compressm::kernels::cuda
