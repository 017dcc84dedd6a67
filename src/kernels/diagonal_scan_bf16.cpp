// CPU kernels of diagonal_scan_bf16.h. Laid out as the float scan
// (diagonal_scan.cpp): one task per batch row and run of up to kStates
// contiguous states, the running state in a local buffer. The complex
// arithmetic is written in the order of the CUDA kernels (detail::complex_mul,
// conj_mul in kernels/cuda/cuda_common.cuh), so that without fused
// multiply-adds both give the same bits.
#include "kernels/diagonal_scan_bf16.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <vector>

namespace compressm::kernels {
namespace {

constexpr int64_t kStates = 512;

float to_float(uint16_t bits) { return static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits())); }
uint16_t to_bf16(float value) { return c10::BFloat16(value).x; }

// s <- lambda s + (ur, ui) for one state.
inline void step(const float* l, float* s, float ur, float ui) {
  const float re = (l[0] * s[0] - l[1] * s[1]) + ur;
  const float im = (l[0] * s[1] + l[1] * s[0]) + ui;
  s[0] = re;
  s[1] = im;
}

template <class Task>
void for_each_task(ScanShape s, const Task& task) {
  const int64_t runs = (s.state + kStates - 1) / kStates;
  at::parallel_for(0, s.batch * runs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / runs, n0 = (t % runs) * kStates;
      task(b, n0, std::min(s.state, n0 + kStates));
    }
  });
}

}  // namespace

void diagonal_scan_bf16_forward(const float* lambda, const uint16_t* u, uint16_t* x, float* checkpoints,
                                ScanShape s) {
  const int64_t chunks = bf16_scan_chunks(s.length);
  for_each_task(s, [&](int64_t b, int64_t n0, int64_t n1) {
    float state[2 * kStates] = {};
    for (int64_t k = 0; k < s.length; ++k) {
      if (k % kBf16ScanChunk == 0)
        std::copy(state, state + 2 * (n1 - n0), checkpoints + 2 * ((b * chunks + k / kBf16ScanChunk) * s.state + n0));
      const int64_t offset = 2 * ((b * s.length + k) * s.state + n0);
      for (int64_t i = 0; i < n1 - n0; ++i) {
        float* si = state + 2 * i;
        step(lambda + 2 * (n0 + i), si, to_float(u[offset + 2 * i]), to_float(u[offset + 2 * i + 1]));
        x[offset + 2 * i] = to_bf16(si[0]);
        x[offset + 2 * i + 1] = to_bf16(si[1]);
      }
    }
  });
}

void diagonal_scan_bf16_backward(const float* lambda, const uint16_t* u, const float* checkpoints,
                                 const uint16_t* grad_x, uint16_t* grad_u, float* grad_lambda_rows, ScanShape s) {
  const int64_t chunks = bf16_scan_chunks(s.length);
  for_each_task(s, [&](int64_t b, int64_t n0, int64_t n1) {
    const int64_t w = n1 - n0;
    // states[k] = s_{t0 + k} of the current chunk, recomputed from its checkpoint.
    std::vector<float> states(2 * kBf16ScanChunk * w);
    float carry[2 * kStates] = {}, acc[2 * kStates] = {};
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = c * kBf16ScanChunk, m = std::min(kBf16ScanChunk, s.length - t0);
      const float* entering = checkpoints + 2 * ((b * chunks + c) * s.state + n0);
      for (int64_t k = 0; k < m; ++k) {
        const int64_t offset = 2 * ((b * s.length + t0 + k) * s.state + n0);
        float* sk = states.data() + 2 * k * w;
        std::copy(k == 0 ? entering : sk - 2 * w, (k == 0 ? entering : sk - 2 * w) + 2 * w, sk);
        for (int64_t i = 0; i < w; ++i)
          step(lambda + 2 * (n0 + i), sk + 2 * i, to_float(u[offset + 2 * i]), to_float(u[offset + 2 * i + 1]));
      }
      for (int64_t k = m - 1; k >= 0; --k) {
        const int64_t offset = 2 * ((b * s.length + t0 + k) * s.state + n0);
        const float* prev = k == 0 ? entering : states.data() + 2 * (k - 1) * w;
        for (int64_t i = 0; i < w; ++i) {
          const float* l = lambda + 2 * (n0 + i);
          float* g = carry + 2 * i;
          // g = grad_x + conj(lambda) g
          const float gr = to_float(grad_x[offset + 2 * i]) + (l[0] * g[0] + l[1] * g[1]);
          const float gi = to_float(grad_x[offset + 2 * i + 1]) + (l[0] * g[1] - l[1] * g[0]);
          g[0] = gr;
          g[1] = gi;
          grad_u[offset + 2 * i] = to_bf16(gr);
          grad_u[offset + 2 * i + 1] = to_bf16(gi);
          // acc += conj(s_{k-1}) g
          const float pr = prev[2 * i], pi = prev[2 * i + 1];
          acc[2 * i] = acc[2 * i] + (pr * gr + pi * gi);
          acc[2 * i + 1] = acc[2 * i + 1] + (pr * gi - pi * gr);
        }
      }
    }
    std::copy(acc, acc + 2 * w, grad_lambda_rows + 2 * (b * s.state + n0));
  });
}

}  // namespace compressm::kernels
