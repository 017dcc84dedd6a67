// Register-tiled matrix products on small, cache-resident, zero-padded blocks:
// the three shapes the fused LRU layer needs per time chunk. Written with
// GCC/Clang vector extensions (one 64-byte vector = 16 floats or 8 doubles;
// lowered to AVX-512, AVX2 or SSE by the compiler), no intrinsics.
//
// Layout conventions: row-major, every row length `s` (the long dimension) a
// multiple of the vector width, every short dimension (`rows`, `k`) a multiple
// of kTile. Callers pad with zeros.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>

namespace compressm::kernels::small_gemm {

template <class T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(64)));
  static constexpr int64_t width = 16;
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(64)));
  static constexpr int64_t width = 8;
};

// Rows and short-dimension entries per register tile.
constexpr int64_t kTile = 4;

template <class T>
inline typename Vec<T>::type load(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof v);  // one unaligned vector load
  return v;
}
template <class T>
inline void store(T* p, typename Vec<T>::type v) {
  std::memcpy(p, &v, sizeof v);
}

// out {rows, s} = a {rows, k} (leading dim lda) x m {k, s}.
// Tile: 4 rows x 4 vectors (16 accumulators); per k, 4 loads + 4 broadcasts.
template <class T>
void expand(const T* a, int64_t lda, const T* m, T* out, int64_t rows, int64_t k, int64_t s) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::width;
  for (int64_t r = 0; r < rows; r += kTile) {
    int64_t j = 0;
    for (; j + 4 * W <= s; j += 4 * W) {
      V acc[kTile][4] = {};
      for (int64_t q = 0; q < k; ++q) {
        const V m0 = load(m + q * s + j), m1 = load(m + q * s + j + W);
        const V m2 = load(m + q * s + j + 2 * W), m3 = load(m + q * s + j + 3 * W);
        for (int64_t i = 0; i < kTile; ++i) {
          const T ai = a[(r + i) * lda + q];
          acc[i][0] += ai * m0;
          acc[i][1] += ai * m1;
          acc[i][2] += ai * m2;
          acc[i][3] += ai * m3;
        }
      }
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t c = 0; c < 4; ++c) store(out + (r + i) * s + j + c * W, acc[i][c]);
    }
    for (; j < s; j += W) {
      V acc[kTile] = {};
      for (int64_t q = 0; q < k; ++q) {
        const V m0 = load(m + q * s + j);
        for (int64_t i = 0; i < kTile; ++i) acc[i] += a[(r + i) * lda + q] * m0;
      }
      for (int64_t i = 0; i < kTile; ++i) store(out + (r + i) * s + j, acc[i]);
    }
  }
}

// Transposed reduction: W vectors in, one vector out whose lane l is the sum
// of all lanes of input bitreverse(l). Each level adds the two halves of every
// lane group of a pair of vectors into one vector (two shuffles and one add),
// log2(W) levels in all: W - 1 folds instead of W horizontal sums.
constexpr int fold_lane(int64_t width, int64_t half, bool upper, int64_t lane) {
  const int64_t pos = lane % (2 * half), group = lane / (2 * half);
  return static_cast<int>(group * 2 * half + pos % half + (upper ? half : 0) + (pos >= half ? width : 0));
}

template <class T, int64_t kHalf, size_t... kLane>
inline typename Vec<T>::type fold(typename Vec<T>::type x, typename Vec<T>::type y,
                                  std::index_sequence<kLane...>) {
  constexpr int64_t W = Vec<T>::width;
  return __builtin_shufflevector(x, y, fold_lane(W, kHalf, false, kLane)...) +
         __builtin_shufflevector(x, y, fold_lane(W, kHalf, true, kLane)...);
}

template <class T, int64_t kHalf>
inline void fold_level(typename Vec<T>::type* v, int64_t count) {
  for (int64_t i = 0; i < count / 2; ++i)
    v[i] = fold<T, kHalf>(v[2 * i], v[2 * i + 1], std::make_index_sequence<Vec<T>::width>());
  if constexpr (kHalf > 1) fold_level<T, kHalf / 2>(v, count / 2);
}

constexpr int64_t bit_reverse(int64_t value, int64_t width) {
  int64_t out = 0;
  for (int64_t bit = 1; bit < width; bit *= 2, value /= 2) out = out * 2 + value % 2;
  return out;
}

// sums[o] = total of the lanes of acc[o], o < kTile * kTile.
template <class T>
inline void sum_lanes(const typename Vec<T>::type* acc, T* sums) {
  constexpr int64_t W = Vec<T>::width;
  for (int64_t g = 0; g < kTile * kTile; g += W) {
    typename Vec<T>::type v[W];
    for (int64_t l = 0; l < W; ++l) v[l] = acc[g + bit_reverse(l, W)];
    fold_level<T, W / 2>(v, W);
    store(sums + g, v[0]);
  }
}

// out {rows, k} (leading dim ldo) = x {rows, s} x m {k, s}^T.
// Tile: 4 rows x 4 outputs, 16 lane-wise partial sums reduced at the end
// (kTile * kTile must be a multiple of the vector width: 16 floats, 8 doubles).
template <class T>
void contract(const T* x, const T* m, T* out, int64_t ldo, int64_t rows, int64_t k, int64_t s) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::width;
  for (int64_t r = 0; r < rows; r += kTile) {
    for (int64_t q = 0; q < k; q += kTile) {
      V acc[kTile][kTile];  // zeroed lane by lane: `= {}` became a rep stos
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t c = 0; c < kTile; ++c) acc[i][c] = V{};
      for (int64_t j = 0; j < s; j += W) {
        V mv[kTile];
        for (int64_t c = 0; c < kTile; ++c) mv[c] = load(m + (q + c) * s + j);
        for (int64_t i = 0; i < kTile; ++i) {
          const V xv = load(x + (r + i) * s + j);
          for (int64_t c = 0; c < kTile; ++c) acc[i][c] += xv * mv[c];
        }
      }
      T sums[kTile * kTile];
      sum_lanes<T>(&acc[0][0], sums);
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t c = 0; c < kTile; ++c) out[(r + i) * ldo + q + c] = sums[i * kTile + c];
    }
  }
}

// m {k, s} += a {rows, k}^T (leading dim lda) x x {rows, s}: a sum over rows
// of outer products. Tile: 4 rows of m x 4 vectors held in registers.
template <class T>
void accumulate_outer(const T* a, int64_t lda, const T* x, T* m, int64_t rows, int64_t k,
                      int64_t s) {
  using V = typename Vec<T>::type;
  constexpr int64_t W = Vec<T>::width;
  for (int64_t q = 0; q < k; q += kTile) {
    int64_t j = 0;
    for (; j + 4 * W <= s; j += 4 * W) {
      V acc[kTile][4];
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t c = 0; c < 4; ++c) acc[i][c] = load(m + (q + i) * s + j + c * W);
      for (int64_t t = 0; t < rows; ++t) {
        const V x0 = load(x + t * s + j), x1 = load(x + t * s + j + W);
        const V x2 = load(x + t * s + j + 2 * W), x3 = load(x + t * s + j + 3 * W);
        for (int64_t i = 0; i < kTile; ++i) {
          const T ai = a[t * lda + q + i];
          acc[i][0] += ai * x0;
          acc[i][1] += ai * x1;
          acc[i][2] += ai * x2;
          acc[i][3] += ai * x3;
        }
      }
      for (int64_t i = 0; i < kTile; ++i)
        for (int64_t c = 0; c < 4; ++c) store(m + (q + i) * s + j + c * W, acc[i][c]);
    }
    for (; j < s; j += W) {
      V acc[kTile];
      for (int64_t i = 0; i < kTile; ++i) acc[i] = load(m + (q + i) * s + j);
      for (int64_t t = 0; t < rows; ++t) {
        const V x0 = load(x + t * s + j);
        for (int64_t i = 0; i < kTile; ++i) acc[i] += a[t * lda + q + i] * x0;
      }
      for (int64_t i = 0; i < kTile; ++i) store(m + (q + i) * s + j, acc[i]);
    }
  }
}

}  // namespace compressm::kernels::small_gemm
