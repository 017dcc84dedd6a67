// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
// easy as 1, 2, 3", SC 2011): a counter-based generator. Four 32-bit words
// are a pure function of a 128-bit counter and a 64-bit key, so element i of
// a dropout mask can be drawn by whichever thread (or GPU thread) handles
// it, in any order, and drawn again in a backward pass, from one seed. The
// same generator as cuRAND's and LibTorch's CUDA Philox; checked against
// the published known-answer vectors (tests/kernels/test_philox.cpp).
// Host and device (nvcc) code; no LibTorch header.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define COMPRESSM_PHILOX_HD __host__ __device__ __forceinline__
#else
#define COMPRESSM_PHILOX_HD inline
#endif

namespace compressm::kernels::philox {

struct Words {
  uint32_t w[4];
};

// The ten rounds on counter (c0, c1, c2, c3) with key (k0, k1).
COMPRESSM_PHILOX_HD Words philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                        uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (Weyl) increments
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0, p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// The keep threshold of Bernoulli(keep_prob) draws on 32-bit words: a word
// u keeps its element when u < threshold, so P(keep) = threshold / 2^32
// (within 2^-33 of keep_prob; keep_prob 1 keeps every element).
COMPRESSM_PHILOX_HD uint64_t keep_threshold(double keep_prob) {
  if (keep_prob >= 1.0) return uint64_t{1} << 32;
  if (keep_prob <= 0.0) return 0;
  return static_cast<uint64_t>(keep_prob * 4294967296.0 + 0.5);
}

// The dropout draws of one mask: element i takes word i % 4 of the counter
// (i / 4 as two 32-bit halves, 0, 0) under the key `seed`. Every consumer
// (CPU loop, CUDA kernel, a backward pass drawing again) computes the same
// bit for the same (seed, i).
COMPRESSM_PHILOX_HD Words keep_words(uint64_t seed, uint64_t group) {
  return philox4x32_10(static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

COMPRESSM_PHILOX_HD bool keeps(uint64_t seed, uint64_t i, uint64_t threshold) {
  return keep_words(seed, i >> 2).w[i & 3] < threshold;
}

// The draws of CUDA kernels that take LibTorch's CUDA generator state
// (seed, offset): group g gets the counter curand_init(seed, g, offset)
// starts from, (offset / 4 as two halves, g as two halves), i.e. subsequence
// g at that offset, as LibTorch's own kernels use subsequence = thread index.
// A draw that reserved 4 words per subsequence (philox_cuda_state(4)) then
// stays inside its reservation: no counter another draw of the same
// generator uses.
COMPRESSM_PHILOX_HD Words generator_words(uint64_t seed, uint64_t offset, uint64_t group) {
  const uint64_t step = offset / 4;
  return philox4x32_10(static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32),
                       static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

COMPRESSM_PHILOX_HD bool generator_keeps(uint64_t seed, uint64_t offset, uint64_t i, uint64_t threshold) {
  return generator_words(seed, offset, i >> 2).w[i & 3] < threshold;
}

}  // namespace compressm::kernels::philox
