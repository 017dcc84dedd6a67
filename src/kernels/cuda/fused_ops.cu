// fused_ops_cuda.h: grid-stride loops over the per-element functions of
// kernels/fused_ops.h. Memory-bound: each element is read and
// written once; bfloat16 rounds to nearest even, as c10::BFloat16 does.
#include <cuda_bf16.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "kernels/fused_ops.h"
#include "kernels/cuda/fused_ops_cuda.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/philox_state.cuh"
#include "kernels/philox.h"

namespace compressm::kernels::cuda {
namespace {

namespace ew = compressm::kernels::elementwise;

constexpr int kThreads = 256;

__device__ __forceinline__ float load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, long long i, float value) { p[i] = value; }
__device__ __forceinline__ void store(__nv_bfloat16* p, long long i, float value) { p[i] = __float2bfloat16_rn(value); }

// Enough blocks to fill the device several times over; the loops stride.
unsigned int grid_for(long long n) {
  const unsigned int blocks = detail::blocks_for(n, kThreads);
  return blocks < 4096u ? blocks : 4096u;
}

// Vectorised access: the wide kernels below take W consecutive elements of a
// row per thread (W = 4: one 16-byte load of four float32, one 8-byte load
// of four bfloat16, one 4-byte load of four mask bytes) where the host found
// H a multiple of 4 and every pointer aligned for it (vector_width); W = 1
// is the scalar path, for any shape. Each element's arithmetic is the same
// either way. (Run 6's profile: LibTorch's vectorised bfloat16 cast moved
// 3.78 TB/s on the H200, its scalar copies 0.9-1.5 TB/s, and our scalar
// kernels 1.1-2.7 TB/s.)
template <int W>
struct Vec {
  float v[W];
};
// W consecutive values of T as one memory access.
template <int W, class T>
struct alignas(W * sizeof(T)) Packed {
  T v[W];
};
// A misaligned vector access faults on the device
// (cudaErrorMisalignedAddress); the CPU emulator, where it would not, checks
// every one.
template <int W, class T>
__device__ __forceinline__ void check_vector_alignment(const T* p) {
#if defined(COMPRESSM_CUDA_EMULATION)
  if (reinterpret_cast<uintptr_t>(p) % alignof(Packed<W, T>) != 0) throw std::logic_error("misaligned vector access");
#endif
}
// W consecutive T as loaded, still packed, in a built-in integer (vector)
// of their size: four bfloat16 in two registers, four mask bytes in one,
// unpacked where used. A batch of rows' loads held this way takes fewer
// registers than as floats (lru_skip_gelu_backward_kernel).
template <int Bytes>
struct Bits;
template <>
struct Bits<16> {
  using type = uint4;
};
template <>
struct Bits<8> {
  using type = uint2;
};
template <>
struct Bits<4> {
  using type = unsigned int;
};
template <>
struct Bits<2> {
  using type = unsigned short;
};
template <>
struct Bits<1> {
  using type = unsigned char;
};
template <int W, class T>
using RawOf = typename Bits<sizeof(Packed<W, T>)>::type;
template <int W, class T>
__device__ __forceinline__ RawOf<W, T> load_raw(const T* p, long long i) {
  check_vector_alignment<W>(p + i);
#if defined(COMPRESSM_CUDA_EMULATION)  // C++ on the host: no integer reads of float storage
  RawOf<W, T> raw;
  memcpy(&raw, p + i, sizeof raw);
  return raw;
#else
  return *reinterpret_cast<const RawOf<W, T>*>(p + i);
#endif
}
template <int W, class T>
__device__ __forceinline__ Vec<W> unpack(const RawOf<W, T>& raw) {
  Packed<W, T> packed;
  memcpy(&packed, &raw, sizeof packed);
  Vec<W> out;
#pragma unroll
  for (int k = 0; k < W; ++k) out.v[k] = load(packed.v, k);
  return out;
}
// W consecutive T at p + i as floats: one load, unpacked at once.
template <int W, class T>
__device__ __forceinline__ Vec<W> load_vec(const T* p, long long i) {
  return unpack<W, T>(load_raw<W>(p, i));
}
// load_vec, or `fallback` in every lane where p is null.
template <int W>
__device__ __forceinline__ Vec<W> load_vec_or(const float* p, long long i, float fallback) {
  if (p != nullptr) return load_vec<W>(p, i);
  Vec<W> out;
#pragma unroll
  for (int k = 0; k < W; ++k) out.v[k] = fallback;
  return out;
}
// Stores `raw` at p as one instruction: 16 and 8 bytes by the store
// intrinsic (stored as Packed itself, or a built-in vector copied from it,
// nvcc split the stores of a batched_grid_stride round's second group into
// four scalar ones), smaller ones as one integer.
template <class R>
__device__ __forceinline__ void store_raw(void* p, const R& raw) {
#if defined(COMPRESSM_CUDA_EMULATION)  // C++ on the host: no integer writes into float storage
  memcpy(p, &raw, sizeof raw);
#else
  if constexpr (std::is_same_v<R, uint4> || std::is_same_v<R, uint2>)
    __stwb(static_cast<R*>(p), raw);
  else
    *static_cast<R*>(p) = raw;
#endif
}
template <int W, class T>
__device__ __forceinline__ void store_vec(T* p, long long i, const Vec<W>& value) {
  Packed<W, T> packed;
#pragma unroll
  for (int k = 0; k < W; ++k) store(packed.v, k, value.v[k]);
  check_vector_alignment<W>(p + i);
  RawOf<W, T> raw;
  memcpy(&raw, &packed, sizeof raw);
  store_raw(p + i, raw);
}
// A kernel's Dropout (fused_ops_cuda.h) with the Philox state resolved
// (this replay's values behind a captured state's pointers), once per thread.
struct DropoutDraws {
  const uint8_t* keep;
  float scale;
  bool draw;
  uint64_t seed = 0, offset = 0, threshold;
  __device__ explicit DropoutDraws(const Dropout& d)
      : keep(d.keep), scale(d.scale), draw(d.draw), threshold(d.threshold) {
    if (draw) detail::philox_values(d.philox, seed, offset);
  }
};

// The mask bytes of elements i .. i + W - 1 as loaded (zero where the
// factors are drawn or there is no mask).
template <int W>
__device__ __forceinline__ RawOf<W, uint8_t> load_mask(const DropoutDraws& d, long long i) {
  if (d.draw || d.keep == nullptr) return RawOf<W, uint8_t>{};
  return load_raw<W>(d.keep, i);
}

// The dropout factors of elements i .. i + W - 1 (i a multiple of W), the
// mask's bytes as load_mask gave them: ew::dropout_factor of the mask (1
// without one), or drawn: element i kept where
// philox::generator_keeps(seed, offset, i, threshold), word i % 4 of the
// Philox block of group i / 4 (one block for all four at W = 4).
template <int W>
__device__ __forceinline__ Vec<W> dropout_factors(const DropoutDraws& d, long long i, RawOf<W, uint8_t> mask) {
  Vec<W> out;
  if (d.draw) {
    const philox::Words words = philox::generator_words(d.seed, d.offset, static_cast<uint64_t>(i) >> 2);
    if constexpr (W == 4) {
#pragma unroll
      for (int k = 0; k < 4; ++k) out.v[k] = words.w[k] < d.threshold ? d.scale : 0.f;
    } else {
      // word i % 4 by selects (an index into the array would put it in local memory)
      const uint32_t low = (i & 1) ? words.w[1] : words.w[0], high = (i & 1) ? words.w[3] : words.w[2];
      out.v[0] = ((i & 2) ? high : low) < d.threshold ? d.scale : 0.f;
    }
    return out;
  }
  if (d.keep == nullptr) {
#pragma unroll
    for (int k = 0; k < W; ++k) out.v[k] = 1.f;
    return out;
  }
  Packed<W, uint8_t> bytes;
  memcpy(&bytes, &mask, sizeof bytes);
#pragma unroll
  for (int k = 0; k < W; ++k) out.v[k] = ew::dropout_factor(bytes.v, k, d.scale);
  return out;
}
template <int W>
__device__ __forceinline__ Vec<W> dropout_factors(const DropoutDraws& d, long long i) {
  return dropout_factors<W>(d, i, load_mask<W>(d, i));
}
// ew::with_bias of columns j .. j + W - 1.
template <int W>
__device__ __forceinline__ Vec<W> with_bias(Vec<W> v, const float* bias, long long j) {
  if (bias == nullptr) return v;
  const Vec<W> b = load_vec<W>(bias, j);
#pragma unroll
  for (int k = 0; k < W; ++k) v.v[k] = ew::with_bias(v.v[k], b.v, k);
  return v;
}

// set_vector_width's value: 4 (the default) or 1.
std::atomic<int>& widest_vectors() {
  static std::atomic<int> width{4};
  return width;
}

// The width a launch takes: 4 where H is a multiple of 4 (so is every
// row's start and n) and every pointer (null or not) is aligned for four of
// its type, unless set_vector_width(1) said otherwise; else 1.
template <class T>
bool aligned_for_four(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}
template <class... T>
int vector_width(long long hidden, const T*... pointers) {
  return widest_vectors().load() == 4 && hidden % 4 == 0 && (aligned_for_four(pointers) && ...) ? 4 : 1;
}
// Calls f(std::integral_constant<int, W>{}) for W = width (4 or 1).
template <class F>
void with_width(int width, const F& f) {
  if (width == 4)
    f(std::integral_constant<int, 4>{});
  else
    f(std::integral_constant<int, 1>{});
}

// A batched_grid_stride thread's rounds take kStrideBatch<W> groups of W
// elements each: 4 single elements, or 2 groups of four (fewer registers;
// 8 elements in flight per thread either way with W = 4).
template <int W>
constexpr int kStrideBatch = W == 1 ? 4 : 2;
// The grid of a batched_grid_stride kernel: one round per thread from the
// first on, at most 4096 blocks.
template <int W>
unsigned int batched_grid_for(long long n) {
  const unsigned int blocks = detail::blocks_for(n, kThreads * kStrideBatch<W> * W);
  return blocks < 4096u ? blocks : 4096u;
}

// A grid-stride loop of index i over [0, n). (A macro: written as inline
// functions, ptxas spilled registers in glu_residual_backward_kernel.)
#define COMPRESSM_GRID_STRIDE_LOOP(i, n)                                                        \
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<long long>(gridDim.x) * blockDim.x)

// A grid-stride loop over [0, n) in groups of W consecutive elements (n a
// multiple of W), kStrideBatch<W> groups of a thread at a time (i, i +
// stride, ...): fetch(i) loads each group's inputs first, then apply(inputs,
// i) computes and stores them in turn, so that the loads of all of them are
// in flight at once. (One element at a time, the branches of the
// per-element math (a null mask or bias, erf's and exp's range checks) kept
// the compiler from issuing the next element's loads early:
// lru_skip_gelu_forward moved 1.66 TB/s and glu_residual's backward 2.12
// TB/s on the H200.) Each element's result is as before. Launched on
// batched_grid_for<W>(n) blocks.
template <int W, class Fetch, class Apply>
__device__ __forceinline__ void batched_grid_stride(long long n, const Fetch& fetch, const Apply& apply) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x * W;
  using Inputs = decltype(fetch(0LL));
  // Rounds of kStrideBatch<W> groups, the last one's groups past n left out
  // (predicated: a thread with fewer groups still fetches them together).
  for (long long i = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) * W; i < n;
       i += kStrideBatch<W> * stride) {
    Inputs in[kStrideBatch<W>] = {};
#pragma unroll
    for (int k = 0; k < kStrideBatch<W>; ++k)
      if (i + k * stride < n) in[k] = fetch(i + k * stride);
#pragma unroll
    for (int k = 0; k < kStrideBatch<W>; ++k)
      if (i + k * stride < n) apply(in[k], i + k * stride);
  }
}

template <class Z>
__global__ void __launch_bounds__(kThreads)
    gelu_dropout_forward_kernel(const float* __restrict__ y, Z* __restrict__ z, long long n,
                                const uint8_t* __restrict__ keep, float scale) {
  struct Inputs {
    float y, factor;
  };
  batched_grid_stride<1>(
      n, [&](long long i) { return Inputs{y[i], ew::dropout_factor(keep, i, scale)}; },
      [&](const Inputs& in, long long i) { store(z, i, ew::gelu(in.y) * in.factor); });
}

template <class Z>
__global__ void __launch_bounds__(kThreads)
    gelu_dropout_backward_kernel(const float* __restrict__ y, const Z* __restrict__ grad_z,
                                 float* __restrict__ grad_y, long long n, const uint8_t* __restrict__ keep,
                                 float scale) {
  struct Inputs {
    float grad_z, factor, y;
  };
  batched_grid_stride<1>(
      n, [&](long long i) { return Inputs{load(grad_z, i), ew::dropout_factor(keep, i, scale), y[i]}; },
      [&](const Inputs& in, long long i) { grad_y[i] = in.grad_z * in.factor * ew::gelu_derivative(in.y); });
}

// Elements (r, j .. j + W - 1) of out per group: v at vg[r, j], g at vg[r, H + j].
template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    glu_residual_forward_kernel(const V* __restrict__ vg, const float* __restrict__ x, float* __restrict__ out,
                                long long n, long long hidden, const Dropout dropout, const float* __restrict__ bias) {
  struct Inputs {
    Vec<W> x, v, g, factor;
  };
  const DropoutDraws draws(dropout);
  batched_grid_stride<W>(
      n,
      [&](long long i) {
        const long long j = i % hidden, value = i + (i / hidden) * hidden;  // r 2H + j
        return Inputs{load_vec<W>(x, i), with_bias<W>(load_vec<W>(vg, value), bias, j),
                      with_bias<W>(load_vec<W>(vg, value + hidden), bias, hidden + j), dropout_factors<W>(draws, i)};
      },
      [&](const Inputs& in, long long i) {
        Vec<W> o;
#pragma unroll
        for (int k = 0; k < W; ++k) o.v[k] = ew::glu_output(in.x.v[k], in.v.v[k], in.g.v[k], in.factor.v[k]);
        store_vec<W>(out, i, o);
      });
}

// A value as store() leaves it in memory (bfloat16: rounded), as float.
__device__ __forceinline__ float stored(const float*, float value) { return value; }
__device__ __forceinline__ float stored(const __nv_bfloat16*, float value) {
  return __bfloat162float(__float2bfloat16_rn(value));
}

// With `parts` (not null), also the bias's gradient in parts: launched on
// glu_sums_grid<W>, whose stride (W times the threads in the grid) is a
// multiple of H, so every group a thread takes is in columns j .. j + W - 1,
// j = W t % H; the thread sums its elements of [dv | dg] as stored and
// writes them to parts[W t / H] at columns j .. and H + j .. ({W threads /
// H, 2H}, summed by column_sums).
template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    glu_residual_backward_kernel(const V* __restrict__ vg, const float* __restrict__ grad_out,
                                 V* __restrict__ grad_vg, long long n, long long hidden, const Dropout dropout,
                                 const float* __restrict__ bias, float* __restrict__ parts) {
  struct Inputs {
    Vec<W> v, g, factor, grad_out;
    long long value;  // r 2H + j
  };
  const DropoutDraws draws(dropout);
  Vec<W> sum_v{}, sum_g{};
  batched_grid_stride<W>(
      n,
      [&](long long i) {
        const long long j = i % hidden, value = i + (i / hidden) * hidden;
        return Inputs{with_bias<W>(load_vec<W>(vg, value), bias, j),
                      with_bias<W>(load_vec<W>(vg, value + hidden), bias, hidden + j),
                      dropout_factors<W>(draws, i), load_vec<W>(grad_out, i), value};
      },
      [&](const Inputs& in, long long) {
        Vec<W> gv, gg;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          ew::glu_gradients(in.v.v[k], in.g.v[k], in.factor.v[k], in.grad_out.v[k], gv.v[k], gg.v[k]);
          sum_v.v[k] += stored(grad_vg, gv.v[k]);
          sum_g.v[k] += stored(grad_vg, gg.v[k]);
        }
        store_vec<W>(grad_vg, in.value, gv);
        store_vec<W>(grad_vg, in.value + hidden, gg);
      });
  if (parts == nullptr) return;
  const long long t = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) * W;
  float* part = parts + (t / hidden) * 2 * hidden + t % hidden;
#pragma unroll
  for (int k = 0; k < W; ++k) {
    part[k] = sum_v.v[k];
    part[hidden + k] = sum_g.v[k];
  }
}

template <class V>
__global__ void __launch_bounds__(kThreads)
    lru_skip_forward_kernel(const V* __restrict__ cx, const float* __restrict__ D, const float* __restrict__ u,
                            float* __restrict__ out, long long n, long long hidden, long long parts) {
  COMPRESSM_GRID_STRIDE_LOOP(i, n) {
    const float y = ew::sum_in_order(parts, [&](int64_t s) { return load(cx, s * n + i); });
    out[i] = ew::lru_skip(y, D[i % hidden], u[i]);
  }
}

// Kernels that sum a {rows, hidden} product down its columns in parts
// (ew::lru_skip_parts) take a grid of {parts, column blocks} of
// column_block_threads<W>(hidden) threads: blockIdx.x = part of rows,
// blockIdx.y * blockDim.x + threadIdx.x = column group, columns h .. h + W -
// 1 (part_column<W>(); the kernel returns for h >= hidden). Each thread
// walks its columns down the part's rows (coalesced across h),
// Rows rows at a time: fetch(i) loads one group's inputs for each of the
// batch's rows first, then apply(inputs, i, acc) runs on them in row order,
// acc the K per-column Vec<W>s it accumulates (from zero): the same sums as
// a row-by-row loop; a part's last rows are one more batch, its loads
// predicated. (With the loads inside the per-element math, whose branches
// (a null mask, erf's and exp's range checks) kept the compiler from
// issuing the next row's loads early, a thread had about one row's loads in
// flight: lru_skip_gelu_backward moved 1.66 TB/s on the H200.) Only H / W
// threads run per part (sCIFAR at W = 4: 128 per part, 32k in all), so a
// kernel with few bytes per row takes more rows per batch: each kernel
// picks Rows (kPartRowsAhead unless it says otherwise) for 200 bytes or
// more in flight per thread, within its registers. Value k < Stored of the part
// goes to sums[(k gridDim.x + part) hidden + h ..], so that value k's parts
// lie at sums + k parts H, which sum_rows adds afterwards
// (launch_column_parts) or a merge combines; values from Stored on are the
// thread's own (Welford's count).
constexpr int kPartRowsAhead = 8;

template <int W>
__device__ __forceinline__ long long part_column() {
  return (static_cast<long long>(blockIdx.y) * blockDim.x + threadIdx.x) * W;
}

// Threads per block of a column-parts kernel: one per column group, up to
// kThreads, in whole warps (sCIFAR's H = 512 at W = 4: 128).
template <int W>
int column_block_threads(long long hidden) {
  const long long groups = hidden / W, warps = (groups + 31) / 32;
  return groups >= kThreads ? kThreads : static_cast<int>(warps > 0 ? warps * 32 : 32);
}

template <int W, int K, int Stored = K, int Rows = kPartRowsAhead, class Fetch, class Apply>
__device__ __forceinline__ void accumulate_column_part(long long h, long long rows, long long hidden,
                                                       float* __restrict__ sums, const Fetch& fetch,
                                                       const Apply& apply) {
  const long long first = blockIdx.x * ew::lru_skip_part_rows(rows);
  const long long last = first + ew::lru_skip_part_size(rows, blockIdx.x);
  using Inputs = decltype(fetch(0LL));
  Vec<W> acc[K] = {};
  long long r = first;
  for (; r + Rows <= last; r += Rows) {
    Inputs in[Rows];
#pragma unroll
    for (int k = 0; k < Rows; ++k) in[k] = fetch((r + k) * hidden + h);
#pragma unroll
    for (int k = 0; k < Rows; ++k) apply(in[k], (r + k) * hidden + h, acc);
  }
  if (r < last) {  // the part's last rows, fewer than Rows
    Inputs in[Rows] = {};
#pragma unroll
    for (int k = 0; k < Rows; ++k)
      if (r + k < last) in[k] = fetch((r + k) * hidden + h);
#pragma unroll
    for (int k = 0; k < Rows; ++k)
      if (r + k < last) apply(in[k], (r + k) * hidden + h, acc);
  }
#pragma unroll
  for (int k = 0; k < Stored; ++k)
    store_vec<W>(sums, (k * static_cast<long long>(gridDim.x) + blockIdx.x) * hidden + h, acc[k]);
}

// u's value at element i of column h + k from x[i] fetched (NormInput):
// u.x[i] itself, or batch_norm(x[i], mean, invstd) with the columns' means
// and invstds read once per thread (the same value as ew::input_at).
template <int W>
struct ColumnInput {
  bool normalized;
  Vec<W> mean{}, invstd{};
  __device__ ColumnInput(const ew::NormInput& u, long long h) : normalized(u.mean != nullptr) {
    if (normalized) {
      mean = load_vec<W>(u.mean, h);
      invstd = load_vec<W>(u.invstd, h);
    }
  }
  __device__ float at(float x, int k) const { return normalized ? ew::batch_norm(x, mean.v[k], invstd.v[k]) : x; }
};

// Column parts (accumulate_column_part).
template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    lru_skip_backward_kernel(const float* __restrict__ grad_y, const float* __restrict__ u,
                             const V* __restrict__ grad_u_gemm, const float* __restrict__ D,
                             float* __restrict__ grad_u, float* __restrict__ sums, long long rows, long long hidden) {
  struct Inputs {
    Vec<W> g, u, gemm;
  };
  const long long h = part_column<W>();
  if (h >= hidden) return;
  const Vec<W> d = load_vec<W>(D, h);
  accumulate_column_part<W, 1>(
      h, rows, hidden, sums,
      [&](long long i) { return Inputs{load_vec<W>(grad_y, i), load_vec<W>(u, i), load_vec<W>(grad_u_gemm, i)}; },
      [&](const Inputs& in, long long i, Vec<W>* sum) {
        Vec<W> gu;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          sum[0].v[k] = sum[0].v[k] + in.g.v[k] * in.u.v[k];
          gu.v[k] = ew::lru_skip(in.gemm.v[k], d.v[k], in.g.v[k]);
        }
        store_vec<W>(grad_u, i, gu);
      });
}

template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    lru_skip_gelu_forward_kernel(const V* __restrict__ cx, const float* __restrict__ D, const ew::NormInput u,
                                 V* __restrict__ g, long long n, long long hidden, const Dropout dropout) {
  struct Inputs {
    Vec<W> cx, d, x, mean, invstd, factor;
  };
  const DropoutDraws draws(dropout);
  const bool normalized = u.mean != nullptr;
  batched_grid_stride<W>(
      n,
      [&](long long i) {
        const long long h = i % hidden;
        return Inputs{load_vec<W>(cx, i),         load_vec<W>(D, h),
                      load_vec<W>(u.x, i),        load_vec_or<W>(u.mean, h, 0.f),
                      load_vec_or<W>(u.invstd, h, 1.f), dropout_factors<W>(draws, i)};
      },
      [&](const Inputs& in, long long i) {
        Vec<W> out;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          const float ui = normalized ? ew::batch_norm(in.x.v[k], in.mean.v[k], in.invstd.v[k]) : in.x.v[k];
          out.v[k] = ew::skip_gelu(in.cx.v[k], in.d.v[k], ui, in.factor.v[k]);
        }
        store_vec<W>(g, i, out);
      });
}

// Column parts (accumulate_column_part): K = 1, dL/dD; K = 2 (u normalised),
// dL/dD and the sum of gp.
template <class V, int K, int W>
__global__ void __launch_bounds__(kThreads)
    lru_skip_gelu_backward_kernel(const V* __restrict__ grad_g, const V* __restrict__ cx,
                                  const float* __restrict__ D, const ew::NormInput u,
                                  const float* __restrict__ grad_out, V* __restrict__ grad_cx,
                                  float* __restrict__ grad_skip, float* __restrict__ sums, long long rows,
                                  long long hidden, const Dropout dropout) {
  // The bfloat16 inputs and the mask held packed until used (13 registers
  // per row at four wide instead of 20; float inputs: 17), so that 8 rows
  // (~400 bytes) are in flight per thread; the factors (a Philox call where
  // drawn) computed where used.
  struct Inputs {
    RawOf<W, V> cx, grad_g;
    Vec<W> x, grad_out;
    RawOf<W, uint8_t> mask;
  };
  const DropoutDraws draws(dropout);
  const long long h = part_column<W>();
  if (h >= hidden) return;
  const Vec<W> d = load_vec<W>(D, h);
  const ColumnInput<W> column(u, h);
  accumulate_column_part<W, K>(
      h, rows, hidden, sums,
      [&](long long i) {
        return Inputs{load_raw<W>(cx, i), load_raw<W>(grad_g, i), load_vec<W>(u.x, i),
                      load_vec_or<W>(grad_out, i, 0.f), load_mask<W>(draws, i)};
      },
      [&](const Inputs& in, long long i, Vec<W>* acc) {
        const Vec<W> c = unpack<W, V>(in.cx), gg = unpack<W, V>(in.grad_g);
        const Vec<W> factor = dropout_factors<W>(draws, i, in.mask);
        Vec<W> gc, gs;
#pragma unroll
        for (int k = 0; k < W; ++k) {
          const float ui = column.at(in.x.v[k], k);
          const float gp = ew::skip_gelu_gradient(c.v[k], d.v[k], ui, factor.v[k], gg.v[k]);
          gc.v[k] = gp;
          gs.v[k] = ew::skip_input_gradient(in.grad_out.v[k], d.v[k], gp, column.normalized, column.invstd.v[k]);
          acc[0].v[k] = acc[0].v[k] + gp * ui;
          if (K == 2) acc[K - 1].v[k] = acc[K - 1].v[k] + gp;
        }
        store_vec<W>(grad_cx, i, gc);
        store_vec<W>(grad_skip, i, gs);
      });
}

// Rows (or parts) whose loads a column-sum thread issues before adding them in
// order: such a column holds a few hundred values and only a few thousand
// threads run, so one load at a time waited on memory latency (the merge
// below took 132 us at sCIFAR's 256 parts x 512 columns, profiled).
constexpr int kRowsAhead = 16;

// The reductions over the parts of a column (sum_rows, the moments' merge)
// split each column's rows among the threads of a block too: a block takes
// a tile of reduce_tile(rows, cols) columns (fused_ops_cuda.h) and kThreads
// / tile row groups; each thread reduces every groups-th row of its column
// (kRowsAhead loads at a time), then group 0 reduces the groups' results in
// group order. One thread per column adding its 256 parts in a row was
// latency-bound: run 6 measured 19.3 us for each sum_rows of a sCIFAR
// block's column parts and 48.2 us for the moments' merge, at well under
// 0.1 TB/s. The order is fixed by (rows, cols) alone: deterministic.
__host__ __device__ __forceinline__ long long tiles_of(long long cols, int tile) {
  return cols > 0 ? (cols + tile - 1) / tile : 0;
}
// Blocks of those reductions: a block takes several tiles beyond this.
constexpr long long kMaxReduceBlocks = 1024;

// The column_sum_parts kernel's tile (a block per part of rows and tile).
inline int column_tile(long long cols) { return cols < 32 ? static_cast<int>(cols) : 32; }

// This thread's column (within the tile) and row group, and the groups.
struct TileThread {
  int c, group, groups;
};
__device__ __forceinline__ TileThread tile_thread(int tile) {
  const int groups = kThreads / tile;
  return {static_cast<int>(threadIdx.x) % tile, static_cast<int>(threadIdx.x) / tile, groups};
}

// A block's share of such a reduction of `count` items down each of `cols`
// columns: each thread folds items p = group, group + groups, ... of its
// column j into a State (fold(state, fetch(p, j), p), in that order;
// kRowsAhead items' fetches issued at a time), then group 0 combines the
// groups' States in group order (combine(total, state), total from State{})
// and calls finish(j, total). State: a trivial type (shared memory), State{}
// the empty state. Blocks stride over the column tiles. cols > 0.
template <class State, class Fetch, class Fold, class Combine, class Finish>
__device__ __forceinline__ void reduce_column_tiles(long long count, long long cols, const Fetch& fetch,
                                                    const Fold& fold, const Combine& combine, const Finish& finish) {
  __shared__ State shares[kThreads];
  using Item = decltype(fetch(0LL, 0LL));
  const int tile = reduce_tile(count, cols);
  const TileThread me = tile_thread(tile);
  const long long tiles = tiles_of(cols, tile), step = me.groups;
  for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
    const long long j = t * tile + me.c;
    State state{};
    if (me.group < me.groups && j < cols) {
      long long p = me.group;
      for (; p + (kRowsAhead - 1) * step < count; p += kRowsAhead * step) {
        Item ahead[kRowsAhead];
#pragma unroll
        for (int k = 0; k < kRowsAhead; ++k) ahead[k] = fetch(p + k * step, j);
#pragma unroll
        for (int k = 0; k < kRowsAhead; ++k) fold(state, ahead[k], p + k * step);
      }
      for (; p < count; p += step) fold(state, fetch(p, j), p);
    }
    shares[threadIdx.x] = state;
    __syncthreads();
    if (me.group == 0 && j < cols) {
      State total{};
      for (int g = 0; g < me.groups; ++g) combine(total, shares[g * tile + me.c]);
      finish(j, total);
    }
    __syncthreads();
  }
}

// batch_norm (kernels::elementwise): column parts (accumulate_column_part) of
// Welford moments, then moments_merge_kernel merges the parts per column.
template <int W>
__global__ void __launch_bounds__(kThreads)
    column_moments_kernel(const float* __restrict__ x, float* __restrict__ parts, long long rows, long long hidden) {
  // acc = (mean, M2) of the part, stored, and the count
  const long long h = part_column<W>();
  if (h >= hidden) return;
  // four-wide: 16 rows of one float4 (256 bytes in flight)
  accumulate_column_part<W, 3, 2, W == 4 ? 16 : 8>(
      h, rows, hidden, parts, [&](long long i) { return load_vec<W>(x, i); },
      [&](const Vec<W>& xi, long long, Vec<W>* acc) {
#pragma unroll
        for (int k = 0; k < W; ++k) ew::welford_add(xi.v[k], acc[2].v[k], acc[0].v[k], acc[1].v[k]);
      });
}

// Welford moments of a part of rows (or of several parts merged).
struct Moments {
  float count, mean, m2;
};

__global__ void __launch_bounds__(kThreads)
    moments_merge_kernel(const float* __restrict__ part_mean, const float* __restrict__ part_m2, long long rows,
                         long long hidden, float eps, float* __restrict__ mean, float* __restrict__ var,
                         float* __restrict__ invstd, const ew::RunningStats running) {
  struct Part {
    float mean, m2;
  };
  const auto merge = [](Moments& a, float count, float part_mean_value, float part_m2_value) {
    ew::moments_merge(a.count, a.mean, a.m2, count, part_mean_value, part_m2_value);
  };
  reduce_column_tiles<Moments>(
      ew::lru_skip_parts(rows), hidden,
      [&](long long p, long long h) { return Part{part_mean[p * hidden + h], part_m2[p * hidden + h]}; },
      [&](Moments& a, const Part& in, long long p) {
        merge(a, static_cast<float>(ew::lru_skip_part_size(rows, p)), in.mean, in.m2);
      },
      [&](Moments& total, const Moments& a) { merge(total, a.count, a.mean, a.m2); },
      [&](long long h, const Moments& m) {
        const float v = rows > 0 ? m.m2 / static_cast<float>(rows) : 0.f;
        mean[h] = m.mean;
        var[h] = v;
        invstd[h] = 1.f / sqrtf(v + eps);
        ew::update_running_stats(running, h, m.mean, v);
      });
}

template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    batch_norm_cast_kernel(const float* __restrict__ x, const float* __restrict__ mean,
                           const float* __restrict__ invstd, V* __restrict__ out, long long n, long long hidden) {
  struct Inputs {
    Vec<W> x, mean, invstd;
  };
  batched_grid_stride<W>(
      n,
      [&](long long i) {
        const long long h = i % hidden;
        return Inputs{load_vec<W>(x, i), load_vec<W>(mean, h), load_vec<W>(invstd, h)};
      },
      [&](const Inputs& in, long long i) {
        Vec<W> u;
#pragma unroll
        for (int k = 0; k < W; ++k) u.v[k] = ew::batch_norm(in.x.v[k], in.mean.v[k], in.invstd.v[k]);
        store_vec<W>(out, i, u);
      });
}

// Column parts of grad_u_gemm and grad_u_gemm .* u.
template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    batch_norm_sums_kernel(const V* __restrict__ grad_u_gemm, const ew::NormInput u, float* __restrict__ sums,
                           long long rows, long long hidden) {
  struct Inputs {
    Vec<W> g, x;
  };
  const long long h = part_column<W>();
  if (h >= hidden) return;
  const ColumnInput<W> column(u, h);
  accumulate_column_part<W, 2>(
      h, rows, hidden, sums, [&](long long i) { return Inputs{load_vec<W>(grad_u_gemm, i), load_vec<W>(u.x, i)}; },
      [&](const Inputs& in, long long, Vec<W>* acc) {
#pragma unroll
        for (int k = 0; k < W; ++k) {
          acc[0].v[k] = acc[0].v[k] + in.g.v[k];
          acc[1].v[k] = acc[1].v[k] + in.g.v[k] * column.at(in.x.v[k], k);
        }
      });
}

// One thread per column: sums (grad_u_gemm's column sums, then those of
// grad_u_gemm .* u) become the means of dz and dz .* u, as the CPU loop does.
__global__ void __launch_bounds__(kThreads)
    batch_norm_means_kernel(const float* __restrict__ D, const float* __restrict__ skip_sums,
                            float* __restrict__ sums, float inv_rows, long long hidden) {
  const long long h = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (h >= hidden) return;
  float mean_dz, mean_dz_u;
  ew::batch_norm_gradient_means(D[h], skip_sums[hidden + h], skip_sums[h], sums[h], sums[hidden + h], inv_rows,
                                mean_dz, mean_dz_u);
  sums[h] = mean_dz;
  sums[hidden + h] = mean_dz_u;
}

// grad_x (holding the skip kernel's grad_skip) += the rest of dL/dx, in
// place (u normalised).
template <class V, int W>
__global__ void __launch_bounds__(kThreads)
    batch_norm_apply_kernel(float* grad_x, const V* __restrict__ grad_u_gemm, const ew::NormInput u,
                            const float* __restrict__ means, long long n, long long hidden) {
  struct Inputs {
    Vec<W> grad_x, gemm, x, mean, invstd, mean_dz, mean_dz_u;
  };
  batched_grid_stride<W>(
      n,
      [&](long long i) {
        const long long h = i % hidden;
        return Inputs{load_vec<W>(grad_x, i),      load_vec<W>(grad_u_gemm, i), load_vec<W>(u.x, i),
                      load_vec<W>(u.mean, h),      load_vec<W>(u.invstd, h),    load_vec<W>(means, h),
                      load_vec<W>(means, hidden + h)};
      },
      [&](const Inputs& in, long long i) {
        Vec<W> out;
#pragma unroll
        for (int k = 0; k < W; ++k)
          out.v[k] = ew::batch_norm_gradient(in.grad_x.v[k], in.gemm.v[k],
                                             ew::batch_norm(in.x.v[k], in.mean.v[k], in.invstd.v[k]),
                                             in.invstd.v[k], in.mean_dz.v[k], in.mean_dz_u.v[k]);
        store_vec<W>(grad_x, i, out);
      });
}

// One thread per element of B and of C (and of lambda); the same places as
// the CPU loop (ew::lru_bf16_pack_indices); then one per element of the
// padding (w_in's last 2 (P - N) rows, w_out's last 2 (P - N) columns,
// lambda's last P - N states), zeros.
__global__ void __launch_bounds__(kThreads)
    lru_bf16_pack_kernel(const float* __restrict__ lambda_re, const float* __restrict__ lambda_im,
                         const float* __restrict__ B_re, const float* __restrict__ B_im,
                         const float* __restrict__ C_re, const float* __restrict__ C_im, long long state,
                         long long padded, long long hidden, float* __restrict__ lambda,
                         __nv_bfloat16* __restrict__ w_in, __nv_bfloat16* __restrict__ w_out) {
  const long long total = state * hidden;
  COMPRESSM_GRID_STRIDE_LOOP(i, total) {
    int64_t in_re, out_re;
    ew::lru_bf16_pack_indices(i, state, padded, hidden, in_re, out_re);
    store(w_in, in_re, B_re[i]);
    store(w_in, in_re + hidden, B_im[i]);
    store(w_out, out_re, C_re[i]);
    store(w_out, out_re + 1, -C_im[i]);
    if (i < state) {
      lambda[2 * i] = lambda_re[i];
      lambda[2 * i + 1] = lambda_im[i];
    }
  }
  const long long pad_columns = 2 * (padded - state);
  COMPRESSM_GRID_STRIDE_LOOP(j, pad_columns * hidden) {
    store(w_in, 2 * state * hidden + j, 0.f);
    store(w_out, (j / pad_columns) * 2 * padded + 2 * state + j % pad_columns, 0.f);
    if (j < pad_columns) lambda[2 * state + j] = 0.f;
  }
}

// Back; threads i < N also add state i's per-row dL/dlambda parts in row order.
__global__ void __launch_bounds__(kThreads)
    lru_bf16_unpack_kernel(const __nv_bfloat16* __restrict__ grad_w_in, const __nv_bfloat16* __restrict__ grad_w_out,
                           const float* __restrict__ lambda_rows, long long rows, long long state, long long padded,
                           long long hidden, float* __restrict__ grad_lambda_re, float* __restrict__ grad_lambda_im,
                           float* __restrict__ grad_B_re, float* __restrict__ grad_B_im,
                           float* __restrict__ grad_C_re, float* __restrict__ grad_C_im) {
  const long long total = state * hidden;
  COMPRESSM_GRID_STRIDE_LOOP(i, total) {
    int64_t in_re, out_re;
    ew::lru_bf16_pack_indices(i, state, padded, hidden, in_re, out_re);
    grad_B_re[i] = load(grad_w_in, in_re);
    grad_B_im[i] = load(grad_w_in, in_re + hidden);
    grad_C_re[i] = load(grad_w_out, out_re);
    grad_C_im[i] = -load(grad_w_out, out_re + 1);
    if (i < state) {
      grad_lambda_re[i] = ew::sum_in_order(rows, [&](int64_t r) { return lambda_rows[(r * padded + i) * 2]; });
      grad_lambda_im[i] = ew::sum_in_order(rows, [&](int64_t r) { return lambda_rows[(r * padded + i) * 2 + 1]; });
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    parameterize_forward_kernel(ew::LruParameters<float> p, long long state, long long hidden,
                                float* __restrict__ lambda_re, float* __restrict__ lambda_im,
                                float* __restrict__ Bt_re, float* __restrict__ Bt_im) {
  const long long total = state * hidden;
  COMPRESSM_GRID_STRIDE_LOOP(i, total) {
    const long long n = i / hidden;
    const float gamma = ew::exp_of(p.gamma_log[n]);
    Bt_re[i] = gamma * p.B_re[i];
    Bt_im[i] = gamma * p.B_im[i];
    if (i == n * hidden) ew::lru_lambda(p.nu_log[n], p.theta_log[n], lambda_re[n], lambda_im[n]);
  }
}

constexpr int kReduceThreads = 128;

// One block per state n: threads stride over h; dL/dgamma_log[n] by a block sum.
__global__ void __launch_bounds__(kReduceThreads)
    parameterize_backward_kernel(ew::LruParameters<float> p, long long hidden, const float* __restrict__ grad_lre,
                                 const float* __restrict__ grad_lim, const float* __restrict__ grad_Bre,
                                 const float* __restrict__ grad_Bim, ew::LruParameterGradients<float> g) {
  __shared__ float warp_sums[kReduceThreads / 32];
  const long long n = blockIdx.x;
  const float gamma = ew::exp_of(p.gamma_log[n]);
  float sum = 0.f;
  for (long long h = threadIdx.x; h < hidden; h += blockDim.x) {
    const long long i = n * hidden + h;
    sum += grad_Bre[i] * p.B_re[i] + grad_Bim[i] * p.B_im[i];
    g.B_re[i] = gamma * grad_Bre[i];
    g.B_im[i] = gamma * grad_Bim[i];
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < kReduceThreads / 32; ++w) total += warp_sums[w];
    g.gamma_log[n] = gamma * total;
    ew::lru_lambda_gradients(p.nu_log[n], p.theta_log[n], grad_lre[n], grad_lim[n], g.nu_log[n], g.theta_log[n]);
  }
}

// One block: rows strided over the threads, then a block sum.
__global__ void __launch_bounds__(kThreads)
    cross_entropy_forward_kernel(const float* __restrict__ logits, const int64_t* __restrict__ labels,
                                 long long batch, long long classes, float* __restrict__ row_lse,
                                 float* __restrict__ loss, double* __restrict__ stats) {
  __shared__ float loss_sums[kThreads];
  __shared__ int correct_sums[kThreads];
  float sum = 0.f;
  int correct = 0;
  for (long long b = threadIdx.x; b < batch; b += blockDim.x) {
    bool hit = false;
    sum += ew::cross_entropy_row(logits + b * classes, classes, labels[b], row_lse[b], hit);
    correct += hit ? 1 : 0;
  }
  loss_sums[threadIdx.x] = sum;
  correct_sums[threadIdx.x] = correct;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      loss_sums[threadIdx.x] += loss_sums[threadIdx.x + half];
      correct_sums[threadIdx.x] += correct_sums[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float mean = loss_sums[0] / static_cast<float>(batch);
    loss[0] = mean;
    stats[0] = static_cast<double>(mean);
    stats[1] = static_cast<double>(correct_sums[0]);
  }
}

__global__ void __launch_bounds__(kThreads)
    cross_entropy_backward_kernel(const float* __restrict__ logits, const int64_t* __restrict__ labels,
                                  const float* __restrict__ row_lse, long long batch, long long classes,
                                  const float* __restrict__ grad_loss, float* __restrict__ grad_logits) {
  const float scale = grad_loss[0] / static_cast<float>(batch);
  COMPRESSM_GRID_STRIDE_LOOP(i, batch * classes) {
    const long long b = i / classes;
    grad_logits[i] = ew::cross_entropy_gradient(logits[i], row_lse[b], labels[b] == i - b * classes, scale);
  }
}

struct SumRowsJobs {
  SumRowsJob jobs[kSumRowsJobs];
};

// blockIdx.y = job: reduce_column_tiles over the job's rows.
__global__ void __launch_bounds__(kThreads) sum_rows_kernel(const SumRowsJobs all) {
  const SumRowsJob job = all.jobs[blockIdx.y];
  if (job.cols <= 0) return;  // the whole block
  reduce_column_tiles<float>(
      job.rows, job.cols, [&](long long r, long long j) { return job.in[r * job.cols + j]; },
      [](float& sum, float x, long long) { sum += x; }, [](float& total, float sum) { total += sum; },
      [&](long long j, float total) { job.out[j] = total; });
}

// Parts of column sums (column_sum_parts in fused_ops_cuda.h), each divided
// by `divisor` (1; mean_over_time: the part is a sequence, the divisor its
// length): block (part, tile of `tile` columns), kThreads / tile row groups
// of `tile` threads; each thread adds every groups-th row of its column
// within the part, then group 0 adds the groups' sums in order.
template <class A>
__global__ void __launch_bounds__(kThreads)
    column_sum_parts_kernel(const A* __restrict__ a, const float* __restrict__ b, float* __restrict__ parts,
                            long long rows, long long cols, int tile, long long part_rows, float divisor) {
  __shared__ float shares[kThreads];
  const int groups = kThreads / tile, c = static_cast<int>(threadIdx.x) % tile;
  const int group = static_cast<int>(threadIdx.x) / tile;
  const long long j = static_cast<long long>(blockIdx.y) * tile + c;
  const long long first = static_cast<long long>(blockIdx.x) * part_rows;
  const long long last = first + part_rows < rows ? first + part_rows : rows;
  float sum = 0.f;
  if (group < groups && j < cols) {
#pragma unroll 4
    for (long long r = first + group; r < last; r += groups) {
      const long long i = r * cols + j;
      sum += b == nullptr ? load(a, i) : load(a, i) * b[i];
    }
  }
  shares[threadIdx.x] = sum;
  __syncthreads();
  if (group == 0 && j < cols) {
    float total = 0.f;
    for (int g = 0; g < groups; ++g) total += shares[g * tile + c];
    parts[static_cast<long long>(blockIdx.x) * cols + j] = total / divisor;
  }
}

// out[b, t, j] = grad[b, j] / length (out {batch, length, cols}): the
// gradient of the mean over time. grad is small and cached; the stores are
// the pass.
__global__ void __launch_bounds__(kThreads)
    spread_over_time_kernel(const float* __restrict__ grad, float* __restrict__ out, long long n, long long length,
                            long long cols) {
  const float divisor = static_cast<float>(length);
  batched_grid_stride<1>(
      n, [&](long long i) { return grad[(i / (length * cols)) * cols + i % cols]; },
      [&](float g, long long i) { out[i] = g / divisor; });
}

// narrow_linear_forward (fused_ops_cuda.h): a block takes a tile of up to
// kThreads groups of W columns and kThreads / tile rows at a time; each
// thread keeps its columns' weights and biases in registers (KMax, the
// kernel's bound on K, of them; those past K are zero and not read) and
// strides over the rows,
// Rows of them at a time: their K loads of x each (one address across a
// row's threads) first, then a W-wide store per row. The K terms are added
// in input order, then the bias.
template <int W, int KMax, int Rows>
__global__ void __launch_bounds__(kThreads)
    narrow_linear_forward_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                                 const float* __restrict__ bias, float* __restrict__ out, long long rows, int inputs,
                                 long long cols, int tile) {
  const int rows_per_block = kThreads / tile, lane = static_cast<int>(threadIdx.x) % tile;
  const int row_in_block = static_cast<int>(threadIdx.x) / tile;
  const long long j = (static_cast<long long>(blockIdx.y) * tile + lane) * W;
  if (row_in_block >= rows_per_block || j >= cols) return;
  float w[W][KMax];
  const float* columns = weight + j * inputs;  // rows j .. j + W - 1 of weight
#pragma unroll
  for (int k = 0; k < W; ++k)
#pragma unroll
    for (int q = 0; q < KMax; ++q) w[k][q] = q < inputs ? columns[k * inputs + q] : 0.f;
  const Vec<W> b = load_vec_or<W>(bias, j, 0.f);
  const long long stride = static_cast<long long>(gridDim.x) * rows_per_block;
  for (long long r = blockIdx.x * static_cast<long long>(rows_per_block) + row_in_block; r < rows;
       r += Rows * stride) {
    float xs[Rows][KMax];
#pragma unroll
    for (int t = 0; t < Rows; ++t) {
      const long long row = r + t * stride;
#pragma unroll
      for (int q = 0; q < KMax; ++q) xs[t][q] = q < inputs && row < rows ? x[row * inputs + q] : 0.f;
    }
#pragma unroll
    for (int t = 0; t < Rows; ++t) {
      if (r + t * stride >= rows) break;
      Vec<W> o;
#pragma unroll
      for (int k = 0; k < W; ++k) {
        float sum = 0.f;
#pragma unroll
        for (int q = 0; q < KMax; ++q)
          if (q < inputs) sum += xs[t][q] * w[k][q];
        o.v[k] = sum + b.v[k];
      }
      store_vec<W>(out, (r + t * stride) * cols + j, o);
    }
  }
}

// narrow_linear_backward's parts, laid out as column_sum_parts_kernel's (a
// block per part of rows and tile of columns, kThreads / tile row groups):
// each thread adds grad[r, j] x[r, q] for every input q, and grad[r, j],
// over every groups-th row of its part; then, one sum at a time, group 0
// adds the groups' sums in group order into weight_parts[part, j K + q] and
// bias_parts[part, j]. The bias sums are column_sum_parts_kernel's, term for
// term.
__global__ void __launch_bounds__(kThreads)
    narrow_linear_parts_kernel(const float* __restrict__ grad, const float* __restrict__ x,
                               float* __restrict__ weight_parts, float* __restrict__ bias_parts, long long rows,
                               int inputs, long long cols, int tile, long long part_rows) {
  constexpr int K = kNarrowLinearInputs;
  __shared__ float shares[kThreads];
  const int groups = kThreads / tile, c = static_cast<int>(threadIdx.x) % tile;
  const int group = static_cast<int>(threadIdx.x) / tile;
  const long long j = static_cast<long long>(blockIdx.y) * tile + c, part = blockIdx.x;
  const long long first = part * part_rows, last = first + part_rows < rows ? first + part_rows : rows;
  float weight_sums[K] = {}, bias_sum = 0.f;
  if (group < groups && j < cols) {
#pragma unroll 4
    for (long long r = first + group; r < last; r += groups) {
      const float g = grad[r * cols + j];
      bias_sum += g;
#pragma unroll
      for (int q = 0; q < K; ++q)
        if (q < inputs) weight_sums[q] += g * x[r * inputs + q];
    }
  }
  // Sum s < K: input s's; s = K: the bias's (inputs < K leave the rest out).
#pragma unroll
  for (int s = 0; s <= K; ++s) {
    if (s < K && s >= inputs) continue;  // the same for the whole block
    shares[threadIdx.x] = s < K ? weight_sums[s] : bias_sum;
    __syncthreads();
    if (group == 0 && j < cols) {
      float total = 0.f;
      for (int g = 0; g < groups; ++g) total += shares[g * tile + c];
      if (s < K)
        weight_parts[(part * cols + j) * inputs + s] = total;
      else
        bias_parts[part * cols + j] = total;
    }
    __syncthreads();
  }
}

// Tensors per launch: their pointers and offsets travel as a kernel argument.
constexpr int kAdamwTensors = 64;
struct AdamwChunk {
  const float* grads[kAdamwTensors];
  long long starts[kAdamwTensors + 1];
};

// blockIdx.y = tensor k of the chunk; threads stride over its elements.
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float* __restrict__ p, float* __restrict__ m, float* __restrict__ v, const AdamwChunk chunk,
                 const float* __restrict__ scalars, float beta1, float beta2, float eps) {
  const float decay = scalars[0], step_size = scalars[1], inv_sqrt_bc2 = scalars[2];
  const float* g = chunk.grads[blockIdx.y];
  if (g == nullptr) return;  // no gradient this step: left as it is, as torch::optim::AdamW does
  const long long begin = chunk.starts[blockIdx.y], size = chunk.starts[blockIdx.y + 1] - begin;
  COMPRESSM_GRID_STRIDE_LOOP(i, size) {
    const long long j = begin + i;
    float pj = p[j], mj = m[j], vj = v[j];
    ew::adamw_update(pj, mj, vj, g[i], decay, step_size, inv_sqrt_bc2, beta1, beta2, eps);
    p[j] = pj;
    m[j] = mj;
    v[j] = vj;
  }
}

}  // namespace

namespace {
// A Dropout's fields agree: a mask or draws, not both; a captured Philox
// state has both pointers.
void check_dropout(const char* op, const Dropout& d) {
  if (d.draw && d.keep != nullptr) throw std::invalid_argument(std::string(op) + ": a mask and draws both given");
  if (d.draw && (d.philox.seed_ptr == nullptr) != (d.philox.offset_ptr == nullptr))
    throw std::invalid_argument(std::string(op) + ": a captured Philox state needs both pointers");
}
}  // namespace

void set_vector_width(int width) {
  if (width != 1 && width != 4) throw std::invalid_argument("set_vector_width: 4 or 1, got " + std::to_string(width));
  widest_vectors().store(width);
}

void gelu_dropout_forward(const float* y, void* z, Storage z_type, int64_t n, const uint8_t* keep, float scale,
                          Stream stream) {
  if (n == 0) return;
  if (z_type == Storage::kBFloat16)
    COMPRESSM_LAUNCH(gelu_dropout_forward_kernel, batched_grid_for<1>(n), kThreads, stream)(
        y, static_cast<__nv_bfloat16*>(z), n, keep, scale);
  else
    COMPRESSM_LAUNCH(gelu_dropout_forward_kernel, batched_grid_for<1>(n), kThreads, stream)(
        y, static_cast<float*>(z), n, keep, scale);
  detail::check_launch("gelu_dropout_forward (CUDA)");
}

void gelu_dropout_backward(const float* y, const void* grad_z, Storage grad_type, float* grad_y, int64_t n,
                           const uint8_t* keep, float scale, Stream stream) {
  if (n == 0) return;
  if (grad_type == Storage::kBFloat16)
    COMPRESSM_LAUNCH(gelu_dropout_backward_kernel, batched_grid_for<1>(n), kThreads, stream)(
        y, static_cast<const __nv_bfloat16*>(grad_z), grad_y, n, keep, scale);
  else
    COMPRESSM_LAUNCH(gelu_dropout_backward_kernel, batched_grid_for<1>(n), kThreads, stream)(
        y, static_cast<const float*>(grad_z), grad_y, n, keep, scale);
  detail::check_launch("gelu_dropout_backward (CUDA)");
}

void glu_residual_forward(const void* vg, Storage vg_type, const float* x, float* out, int64_t rows, int64_t hidden,
                          const Dropout& dropout, Stream stream, const float* bias) {
  const long long n = rows * hidden;
  if (n == 0) return;
  check_dropout("glu_residual_forward (CUDA)", dropout);
  const auto run = [&](const auto* v) {
    with_width(vector_width(hidden, v, x, out, dropout.keep, bias), [&](auto width) {
      constexpr int W = decltype(width)::value;
      const auto kernel = glu_residual_forward_kernel<std::remove_const_t<std::remove_pointer_t<decltype(v)>>, W>;
      COMPRESSM_LAUNCH(kernel, batched_grid_for<W>(n), kThreads, stream)(v, x, out, n, hidden, dropout, bias);
    });
  };
  if (vg_type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(vg));
  else
    run(static_cast<const float*>(vg));
  detail::check_launch("glu_residual_forward (CUDA)");
}

namespace {
// batched_grid_for<W>(n), at most 4096 / W blocks (so that the threads'
// sums, W per thread and column, take no more room at W = 4: 8 MB at
// sCIFAR's sizes), rounded up to a multiple of H / gcd(H, W kThreads)
// blocks: a grid whose thread count times W is a multiple of H (the
// backward's bias sums).
template <int W>
unsigned int glu_sums_grid(long long n, long long hidden) {
  const long long step = hidden / std::gcd(hidden, static_cast<long long>(kThreads) * W);
  const long long most = 4096 / W, blocks = batched_grid_for<W>(n) < most ? batched_grid_for<W>(n) : most;
  const long long rounded = (blocks + step - 1) / step * step;
  if (rounded > 0x7fffffffLL) throw std::invalid_argument("glu_residual_backward (CUDA): H too large for the sums");
  return static_cast<unsigned int>(rounded);
}
// Rows of the threads' sums {W threads / H, 2H} at width W.
template <int W>
int64_t glu_sums_rows(int64_t rows, int64_t hidden) {
  return static_cast<int64_t>(glu_sums_grid<W>(rows * hidden, hidden)) * kThreads * W / hidden;
}
}  // namespace

// Room for the threads' sums and their column_sums parts at either width
// (which one runs depends on the pointers' alignment).
int64_t glu_residual_workspace(int64_t rows, int64_t hidden) {
  if (rows <= 0 || hidden <= 0) return 0;
  int64_t most = 0;
  for (const int64_t sums_rows : {glu_sums_rows<1>(rows, hidden), glu_sums_rows<4>(rows, hidden)}) {
    const int64_t size = (sums_rows + column_sum_parts(sums_rows, 2 * hidden)) * 2 * hidden;
    most = size > most ? size : most;
  }
  return most;
}

void glu_residual_backward(const void* vg, Storage vg_type, const float* grad_out, void* grad_vg, int64_t rows,
                           int64_t hidden, const Dropout& dropout, Stream stream, const float* bias,
                           float* grad_bias, float* workspace) {
  const long long n = rows * hidden;
  if (grad_bias != nullptr && (bias == nullptr || workspace == nullptr))
    throw std::invalid_argument("glu_residual_backward (CUDA): the bias's gradient needs the bias and a workspace");
  if (n == 0) {
    if (grad_bias != nullptr) throw std::invalid_argument("glu_residual_backward (CUDA): no rows to sum");
    return;
  }
  check_dropout("glu_residual_backward (CUDA)", dropout);
  float* parts = grad_bias != nullptr ? workspace : nullptr;
  int64_t sums_rows = 0;
  const auto run = [&](const auto* v, auto* gv) {
    with_width(vector_width(hidden, v, grad_out, gv, dropout.keep, bias), [&](auto width) {
      constexpr int W = decltype(width)::value;
      const unsigned int grid = parts != nullptr ? glu_sums_grid<W>(n, hidden) : batched_grid_for<W>(n);
      sums_rows = static_cast<int64_t>(grid) * kThreads * W / hidden;
      const auto kernel = glu_residual_backward_kernel<std::remove_pointer_t<decltype(gv)>, W>;
      COMPRESSM_LAUNCH(kernel, grid, kThreads, stream)(v, grad_out, gv, n, hidden, dropout, bias, parts);
    });
  };
  if (vg_type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(vg), static_cast<__nv_bfloat16*>(grad_vg));
  else
    run(static_cast<const float*>(vg), static_cast<float*>(grad_vg));
  detail::check_launch("glu_residual_backward (CUDA)");
  if (grad_bias == nullptr) return;
  // The threads' sums {W threads / H, 2H} (sCIFAR: 2048 x 1024, 8 MB),
  // added by column_sums (parts of at most 256 rows over many blocks, then
  // sum_rows): sum_rows alone would run 32 blocks of 8 row groups each
  // adding 256 rows for 1024 columns.
  column_sums(parts, Storage::kFloat32, nullptr, grad_bias, parts + sums_rows * 2 * hidden, sums_rows, 2 * hidden,
              stream);
}

void lru_parameterize_forward(const ew::LruParameters<float>& p, int64_t state, int64_t hidden, float* lambda_re,
                              float* lambda_im, float* Bt_re, float* Bt_im, Stream stream) {
  const long long total = state * hidden;
  if (total == 0) return;
  COMPRESSM_LAUNCH(parameterize_forward_kernel, grid_for(total), kThreads, stream)(
      p, state, hidden, lambda_re, lambda_im, Bt_re, Bt_im);
  detail::check_launch("lru_parameterize_forward (CUDA)");
}

namespace {
void check_padded_states(int64_t state, int64_t padded, const char* what) {
  if (padded < state) throw std::invalid_argument(std::string(what) + ": fewer padded states than states");
}
}  // namespace

void lru_bf16_pack(const float* lambda_re, const float* lambda_im, const float* B_re, const float* B_im,
                   const float* C_re, const float* C_im, int64_t state, int64_t padded, int64_t hidden, float* lambda,
                   void* w_in, void* w_out, Stream stream) {
  check_padded_states(state, padded, "lru_bf16_pack (CUDA)");
  const long long total = state * hidden, padding = 2 * (padded - state) * hidden;
  if (total + padding == 0) return;
  COMPRESSM_LAUNCH(lru_bf16_pack_kernel, grid_for(total > padding ? total : padding), kThreads, stream)(
      lambda_re, lambda_im, B_re, B_im, C_re, C_im, state, padded, hidden, lambda, static_cast<__nv_bfloat16*>(w_in),
      static_cast<__nv_bfloat16*>(w_out));
  detail::check_launch("lru_bf16_pack (CUDA)");
}

void lru_bf16_unpack_gradients(const void* grad_w_in, const void* grad_w_out, const float* lambda_rows, int64_t rows,
                               int64_t state, int64_t padded, int64_t hidden, float* grad_lambda_re,
                               float* grad_lambda_im, float* grad_B_re, float* grad_B_im, float* grad_C_re,
                               float* grad_C_im, Stream stream) {
  check_padded_states(state, padded, "lru_bf16_unpack_gradients (CUDA)");
  const long long total = state * hidden;
  if (total == 0) return;
  COMPRESSM_LAUNCH(lru_bf16_unpack_kernel, grid_for(total), kThreads, stream)(
      static_cast<const __nv_bfloat16*>(grad_w_in), static_cast<const __nv_bfloat16*>(grad_w_out), lambda_rows, rows,
      state, padded, hidden, grad_lambda_re, grad_lambda_im, grad_B_re, grad_B_im, grad_C_re, grad_C_im);
  detail::check_launch("lru_bf16_unpack_gradients (CUDA)");
}

void lru_parameterize_backward(const ew::LruParameters<float>& p, int64_t state, int64_t hidden,
                               const float* grad_lambda_re, const float* grad_lambda_im, const float* grad_Bt_re,
                               const float* grad_Bt_im, const ew::LruParameterGradients<float>& grads,
                               Stream stream) {
  if (state == 0 || hidden == 0) return;
  COMPRESSM_LAUNCH(parameterize_backward_kernel, static_cast<unsigned int>(state), kReduceThreads, stream)(
      p, hidden, grad_lambda_re, grad_lambda_im, grad_Bt_re, grad_Bt_im, grads);
  detail::check_launch("lru_parameterize_backward (CUDA)");
}

void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t batch, int64_t classes,
                           float* row_lse, float* loss, double* stats, Stream stream) {
  COMPRESSM_LAUNCH(cross_entropy_forward_kernel, 1, kThreads, stream)(
      logits, labels, batch, classes, row_lse, loss, stats);
  detail::check_launch("cross_entropy_forward (CUDA)");
}

void cross_entropy_backward(const float* logits, const int64_t* labels, const float* row_lse, int64_t batch,
                            int64_t classes, const float* grad_loss, float* grad_logits, Stream stream) {
  const long long n = batch * classes;
  if (n == 0) return;
  COMPRESSM_LAUNCH(cross_entropy_backward_kernel, grid_for(n), kThreads, stream)(
      logits, labels, row_lse, batch, classes, grad_loss, grad_logits);
  detail::check_launch("cross_entropy_backward (CUDA)");
}

void lru_skip_forward(const void* cx, Storage cx_type, const float* D, const float* u, float* out, int64_t rows,
                      int64_t hidden, Stream stream, int64_t parts) {
  const long long n = rows * hidden;
  if (n == 0) return;
  if (cx_type == Storage::kBFloat16)
    COMPRESSM_LAUNCH(lru_skip_forward_kernel<__nv_bfloat16>, grid_for(n), kThreads, stream)(
        static_cast<const __nv_bfloat16*>(cx), D, u, out, n, hidden, parts);
  else
    COMPRESSM_LAUNCH(lru_skip_forward_kernel<float>, grid_for(n), kThreads, stream)(
        static_cast<const float*>(cx), D, u, out, n, hidden, parts);
  detail::check_launch("lru_skip_forward (CUDA)");
}

namespace {
// Launches a column-parts kernel (accumulate_column_part) at width W through
// launch(grid, block), then adds its parts' sums from workspace into
// column_sum in part order: `sums` sums per column, sum k's parts at
// workspace + k parts H, its total at column_sum + k H.
template <int W, class Launch>
void launch_column_part_kernel(const char* name, int64_t rows, int64_t hidden, const Launch& launch) {
  const int threads = column_block_threads<W>(hidden);
  const unsigned int column_blocks = detail::blocks_for(hidden / W, threads);
  if (column_blocks > 65535u) throw std::invalid_argument(std::string(name) + ": too many channels for the grid");
  const long long parts = ew::lru_skip_parts(rows);
  if (parts == 0) return;
  launch(dim3(static_cast<unsigned int>(parts), column_blocks), dim3(static_cast<unsigned int>(threads)));
  detail::check_launch(name);
}

template <int W, class Launch>
void launch_column_parts(const char* name, int64_t rows, int64_t hidden, float* workspace, float* column_sum,
                         Stream stream, const Launch& launch, int sums = 1) {
  if (hidden == 0) return;
  launch_column_part_kernel<W>(name, rows, hidden, launch);
  const long long parts = ew::lru_skip_parts(rows);
  SumRowsJob jobs[kSumRowsJobs];
  for (int k = 0; k < sums; ++k) jobs[k] = {workspace + k * parts * hidden, column_sum + k * hidden, parts, hidden};
  sum_rows(jobs, sums, stream);
}
}  // namespace

int64_t lru_skip_workspace(int64_t rows, int64_t hidden) { return 2 * ew::lru_skip_parts(rows) * hidden; }

void lru_skip_backward(const float* grad_y, const float* u, const void* grad_u_gemm, Storage grad_type,
                       const float* D, float* grad_u, float* grad_D, float* workspace, int64_t rows, int64_t hidden,
                       Stream stream) {
  const auto run = [&](const auto* gemm) {
    with_width(vector_width(hidden, grad_y, u, gemm, D, grad_u, workspace), [&](auto width) {
      constexpr int W = decltype(width)::value;
      launch_column_parts<W>("lru_skip_backward (CUDA)", rows, hidden, workspace, grad_D, stream,
                             [&](dim3 grid, dim3 block) {
                               const auto kernel =
                                   lru_skip_backward_kernel<std::remove_const_t<std::remove_pointer_t<decltype(gemm)>>,
                                                            W>;
                               COMPRESSM_LAUNCH(kernel, grid, block, stream)(grad_y, u, gemm, D, grad_u, workspace,
                                                                              rows, hidden);
                             });
    });
  };
  if (grad_type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(grad_u_gemm));
  else
    run(static_cast<const float*>(grad_u_gemm));
}

void lru_skip_gelu_forward(const void* cx, Storage type, const float* D, ew::NormInput u, void* g, int64_t rows,
                           int64_t hidden, const Dropout& dropout, Stream stream) {
  const long long n = rows * hidden;
  if (n == 0) return;
  check_dropout("lru_skip_gelu_forward (CUDA)", dropout);
  const auto run = [&](const auto* c, auto* out) {
    with_width(vector_width(hidden, c, out, D, u.x, u.mean, u.invstd, dropout.keep), [&](auto width) {
      constexpr int W = decltype(width)::value;
      const auto kernel = lru_skip_gelu_forward_kernel<std::remove_pointer_t<decltype(out)>, W>;
      COMPRESSM_LAUNCH(kernel, batched_grid_for<W>(n), kThreads, stream)(c, D, u, out, n, hidden, dropout);
    });
  };
  if (type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(cx), static_cast<__nv_bfloat16*>(g));
  else
    run(static_cast<const float*>(cx), static_cast<float*>(g));
  detail::check_launch("lru_skip_gelu_forward (CUDA)");
}

void lru_skip_gelu_backward(const void* grad_g, const void* cx, Storage type, const float* D, ew::NormInput u,
                            const float* grad_out, void* grad_cx, float* grad_skip, float* sums, float* workspace,
                            int64_t rows, int64_t hidden, const Dropout& dropout, Stream stream) {
  const bool normalized = u.mean != nullptr;
  check_dropout("lru_skip_gelu_backward (CUDA)", dropout);
  const auto run = [&](const auto* g, const auto* c, auto* gc) {
    using V = std::remove_pointer_t<decltype(gc)>;
    with_width(vector_width(hidden, g, c, gc, D, u.x, u.mean, u.invstd, grad_out, grad_skip, workspace, dropout.keep),
               [&](auto width) {
                 constexpr int W = decltype(width)::value;
                 launch_column_parts<W>("lru_skip_gelu_backward (CUDA)", rows, hidden, workspace, sums, stream,
                                        [&](dim3 grid, dim3 block) {
                                          const auto kernel = normalized ? lru_skip_gelu_backward_kernel<V, 2, W>
                                                                         : lru_skip_gelu_backward_kernel<V, 1, W>;
                                          COMPRESSM_LAUNCH(kernel, grid, block, stream)(
                                              g, c, D, u, grad_out, gc, grad_skip, workspace, rows, hidden, dropout);
                                        },
                                        normalized ? 2 : 1);
               });
  };
  if (type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(grad_g), static_cast<const __nv_bfloat16*>(cx),
        static_cast<__nv_bfloat16*>(grad_cx));
  else
    run(static_cast<const float*>(grad_g), static_cast<const float*>(cx), static_cast<float*>(grad_cx));
}

int64_t batch_norm_workspace(int64_t rows, int64_t hidden) { return 2 * (ew::lru_skip_parts(rows) + 1) * hidden; }

void column_moments(const float* x, int64_t rows, int64_t hidden, float eps, float* mean, float* var,
                    float* invstd, float* workspace, Stream stream, const ew::RunningStats& running) {
  if (hidden == 0) return;
  const long long parts = ew::lru_skip_parts(rows);
  if (parts > 0) {
    with_width(vector_width(hidden, x, workspace), [&](auto width) {
      constexpr int W = decltype(width)::value;
      launch_column_part_kernel<W>("column_moments (CUDA)", rows, hidden, [&](dim3 grid, dim3 block) {
        COMPRESSM_LAUNCH(column_moments_kernel<W>, grid, block, stream)(x, workspace, rows, hidden);
      });
    });
  }
  const long long tiles = tiles_of(hidden, reduce_tile(parts, hidden));
  COMPRESSM_LAUNCH(moments_merge_kernel, static_cast<unsigned int>(tiles < kMaxReduceBlocks ? tiles : kMaxReduceBlocks),
                   kThreads, stream)(
      workspace, workspace + parts * hidden, rows, hidden, eps, mean, var, invstd, running);
  detail::check_launch("column_moments (CUDA): merge");
}

void batch_norm_cast(const float* x, const float* mean, const float* invstd, void* out, Storage out_type,
                     int64_t rows, int64_t hidden, Stream stream) {
  const long long n = rows * hidden;
  if (n == 0) return;
  const auto run = [&](auto* o) {
    with_width(vector_width(hidden, x, mean, invstd, o), [&](auto width) {
      constexpr int W = decltype(width)::value;
      const auto kernel = batch_norm_cast_kernel<std::remove_pointer_t<decltype(o)>, W>;
      COMPRESSM_LAUNCH(kernel, batched_grid_for<W>(n), kThreads, stream)(x, mean, invstd, o, n, hidden);
    });
  };
  if (out_type == Storage::kBFloat16)
    run(static_cast<__nv_bfloat16*>(out));
  else
    run(static_cast<float*>(out));
  detail::check_launch("batch_norm_cast (CUDA)");
}

void batch_norm_backward(float* grad_x, const void* grad_u_gemm, Storage type, ew::NormInput u, const float* D,
                         const float* skip_sums, float* workspace, int64_t rows, int64_t hidden, Stream stream) {
  const long long n = rows * hidden;
  if (n == 0) return;
  if (u.mean == nullptr) throw std::invalid_argument("batch_norm_backward (CUDA): u must be normalised");
  const long long parts = ew::lru_skip_parts(rows);
  float* sums = workspace + 2 * parts * hidden;  // after the two sums' parts
  const auto run = [&](const auto* gemm) {
    using V = std::remove_const_t<std::remove_pointer_t<decltype(gemm)>>;
    with_width(vector_width(hidden, grad_x, gemm, u.x, u.mean, u.invstd, workspace), [&](auto width) {
      constexpr int W = decltype(width)::value;
      launch_column_parts<W>("batch_norm_backward (CUDA)", rows, hidden, workspace, sums, stream,
                             [&](dim3 grid, dim3 block) {
                               const auto kernel = batch_norm_sums_kernel<V, W>;
                               COMPRESSM_LAUNCH(kernel, grid, block, stream)(gemm, u, workspace, rows, hidden);
                             },
                             2);
      COMPRESSM_LAUNCH(batch_norm_means_kernel, detail::blocks_for(hidden, kThreads), kThreads, stream)(
          D, skip_sums, sums, 1.f / static_cast<float>(rows), hidden);
      detail::check_launch("batch_norm_backward (CUDA): means");
      const auto apply = batch_norm_apply_kernel<V, W>;
      COMPRESSM_LAUNCH(apply, batched_grid_for<W>(n), kThreads, stream)(grad_x, gemm, u, sums, n, hidden);
    });
  };
  if (type == Storage::kBFloat16)
    run(static_cast<const __nv_bfloat16*>(grad_u_gemm));
  else
    run(static_cast<const float*>(grad_u_gemm));
  detail::check_launch("batch_norm_backward (CUDA): apply");
}

void sum_rows(const SumRowsJob* jobs, int count, Stream stream) {
  if (count <= 0) return;
  if (count > kSumRowsJobs) throw std::invalid_argument("sum_rows (CUDA): at most 8 arrays per launch");
  SumRowsJobs all{};
  long long widest = 0;
  for (int k = 0; k < count; ++k) {
    all.jobs[k] = jobs[k];
    widest = jobs[k].cols > widest ? jobs[k].cols : widest;
  }
  if (widest == 0) return;
  long long tiles = 0;  // the most column tiles of any job
  for (int k = 0; k < count; ++k) {
    const long long t = tiles_of(jobs[k].cols, reduce_tile(jobs[k].rows, jobs[k].cols));
    tiles = t > tiles ? t : tiles;
  }
  const dim3 grid(static_cast<unsigned int>(tiles < kMaxReduceBlocks ? tiles : kMaxReduceBlocks),
                  static_cast<unsigned int>(count));
  COMPRESSM_LAUNCH(sum_rows_kernel, grid, kThreads, stream)(all);
  detail::check_launch("sum_rows (CUDA)");
}

// About 8 rows per thread, at most 256 parts (a sum_rows column of 256 rows).
int64_t column_sum_parts(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  const int64_t per_part = static_cast<int64_t>(kThreads / column_tile(cols)) * 8;
  const int64_t parts = (rows + per_part - 1) / per_part;
  return parts < 256 ? parts : 256;
}

void column_sum_parts(const void* a, Storage a_type, const float* b, float* parts, int64_t rows, int64_t cols,
                      Stream stream) {
  const int64_t count = column_sum_parts(rows, cols);
  if (count == 0) return;
  const int tile = column_tile(cols);
  const unsigned int tiles = detail::blocks_for(cols, tile);
  if (tiles > 65535u) throw std::invalid_argument("column_sums (CUDA): more than 65535 x 32 columns");
  const long long part_rows = (rows + count - 1) / count;
  const dim3 grid(static_cast<unsigned int>(count), tiles);
  if (a_type == Storage::kBFloat16)
    COMPRESSM_LAUNCH(column_sum_parts_kernel<__nv_bfloat16>, grid, kThreads, stream)(
        static_cast<const __nv_bfloat16*>(a), b, parts, rows, cols, tile, part_rows, 1.f);
  else
    COMPRESSM_LAUNCH(column_sum_parts_kernel<float>, grid, kThreads, stream)(static_cast<const float*>(a), b, parts,
                                                                            rows, cols, tile, part_rows, 1.f);
  detail::check_launch("column_sums (CUDA)");
}

void column_sums(const void* a, Storage a_type, const float* b, float* out, float* parts, int64_t rows, int64_t cols,
                 Stream stream) {
  if (cols <= 0) return;
  column_sum_parts(a, a_type, b, parts, rows, cols, stream);
  const SumRowsJob job{parts, out, column_sum_parts(rows, cols), cols};
  sum_rows(&job, 1, stream);
}

namespace {
void check_narrow_inputs(int64_t inputs, const char* what) {
  if (inputs < 1 || inputs > kNarrowLinearInputs)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(inputs) + " inputs, not 1 to " +
                                std::to_string(kNarrowLinearInputs));
}
}  // namespace

void narrow_linear_forward(const float* x, const float* weight, const float* bias, float* out, int64_t rows,
                           int64_t inputs, int64_t cols, Stream stream) {
  check_narrow_inputs(inputs, "narrow_linear_forward (CUDA)");
  if (rows <= 0 || cols <= 0) return;
  with_width(vector_width(cols, out, bias), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const long long groups = cols / W;
    const int tile = static_cast<int>(groups < kThreads ? groups : kThreads);
    const unsigned int tiles = detail::blocks_for(groups, tile);
    if (tiles > 65535u) throw std::invalid_argument("narrow_linear_forward (CUDA): more than 65535 column tiles");
    const unsigned int row_blocks = detail::blocks_for(rows, kThreads / tile), most = 4096u / tiles;
    const dim3 grid(row_blocks < most ? row_blocks : (most > 0 ? most : 1u), tiles);
    // up to 4 inputs (the encoder's 1-3): 4 rows in flight; more inputs: 2 (registers; 1 spilled at one wide)
    if (inputs <= 4)
      COMPRESSM_LAUNCH((narrow_linear_forward_kernel<W, 4, 4>), grid, kThreads, stream)(
          x, weight, bias, out, rows, static_cast<int>(inputs), cols, tile);
    else
      COMPRESSM_LAUNCH((narrow_linear_forward_kernel<W, kNarrowLinearInputs, 2>), grid, kThreads, stream)(
          x, weight, bias, out, rows, static_cast<int>(inputs), cols, tile);
  });
  detail::check_launch("narrow_linear_forward (CUDA)");
}

int64_t narrow_linear_workspace(int64_t rows, int64_t inputs, int64_t cols) {
  return column_sum_parts(rows, cols) * cols * (inputs + 1);
}

void narrow_linear_backward(const float* grad, const float* x, float* grad_weight, float* grad_bias,
                            float* workspace, int64_t rows, int64_t inputs, int64_t cols, Stream stream) {
  check_narrow_inputs(inputs, "narrow_linear_backward (CUDA)");
  if (cols <= 0) return;
  const int64_t parts = column_sum_parts(rows, cols);
  float *weight_parts = workspace, *bias_parts = workspace + parts * cols * inputs;
  if (parts > 0) {
    const int tile = column_tile(cols);
    const unsigned int tiles = detail::blocks_for(cols, tile);
    if (tiles > 65535u) throw std::invalid_argument("narrow_linear_backward (CUDA): more than 65535 x 32 columns");
    COMPRESSM_LAUNCH(narrow_linear_parts_kernel, dim3(static_cast<unsigned int>(parts), tiles), kThreads, stream)(
        grad, x, weight_parts, bias_parts, rows, static_cast<int>(inputs), cols, tile, (rows + parts - 1) / parts);
    detail::check_launch("narrow_linear_backward (CUDA)");
  }
  // no rows: sum_rows writes zeros
  const SumRowsJob jobs[2] = {{weight_parts, grad_weight, parts, cols * inputs}, {bias_parts, grad_bias, parts, cols}};
  sum_rows(jobs, 2, stream);
}

void mean_over_time(const float* in, float* out, int64_t batch, int64_t length, int64_t cols, Stream stream) {
  if (batch == 0 || cols == 0) return;
  if (length <= 0) throw std::invalid_argument("mean_over_time (CUDA): no time steps");
  const int tile = column_tile(cols);
  const unsigned int tiles = detail::blocks_for(cols, tile);
  if (tiles > 65535u || batch > 0x7fffffff)
    throw std::invalid_argument("mean_over_time (CUDA): more than 65535 x 32 columns or 2^31 sequences");
  // Column sums with one part per sequence, divided by its length.
  COMPRESSM_LAUNCH(column_sum_parts_kernel<float>, dim3(static_cast<unsigned int>(batch), tiles), kThreads, stream)(
      in, nullptr, out, batch * length, cols, tile, length, static_cast<float>(length));
  detail::check_launch("mean_over_time (CUDA)");
}

void mean_over_time_backward(const float* grad, float* out, int64_t batch, int64_t length, int64_t cols,
                             Stream stream) {
  if (length <= 0) throw std::invalid_argument("mean_over_time_backward (CUDA): no time steps");
  const long long n = batch * length * cols;
  if (n == 0) return;
  COMPRESSM_LAUNCH(spread_over_time_kernel, batched_grid_for<1>(n), kThreads, stream)(grad, out, n, length, cols);
  detail::check_launch("mean_over_time_backward (CUDA)");
}

void adamw_step(const AdamwBucket& bucket, const float* scalars, float beta1, float beta2, float eps,
                Stream stream) {
  for (int64_t first = 0; first < bucket.count; first += kAdamwTensors) {
    const int64_t count = bucket.count - first < kAdamwTensors ? bucket.count - first : kAdamwTensors;
    AdamwChunk chunk{};
    long long largest = 0;
    for (int64_t k = 0; k < count; ++k) {
      chunk.grads[k] = bucket.grads[first + k];
      chunk.starts[k] = bucket.starts[first + k];
      const long long size = bucket.starts[first + k + 1] - bucket.starts[first + k];
      largest = size > largest ? size : largest;
    }
    chunk.starts[count] = bucket.starts[first + count];
    if (largest == 0) continue;
    const dim3 grid(grid_for(largest) < 256 ? grid_for(largest) : 256, static_cast<unsigned int>(count));
    COMPRESSM_LAUNCH(adamw_kernel, grid, kThreads, stream)(
        bucket.p, bucket.m, bucket.v, chunk, scalars, beta1, beta2, eps);
    detail::check_launch("adamw_step (CUDA)");
  }
}

#undef COMPRESSM_GRID_STRIDE_LOOP

}  // namespace compressm::kernels::cuda
