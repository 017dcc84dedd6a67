// CPU loops of narrow_mix.h: tiles of kTileRows rows, each computed in
// scratch arrays that stay in L1 (at most 64 x 16 entries each), tiles in
// parallel; the weight gradients in fixed parts of rows summed in order.
#include "kernels/narrow_mix.h"

#include <ATen/Parallel.h>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include <algorithm>
#include <vector>

namespace compressm::kernels::narrow_mix {
namespace {

constexpr int64_t kTileRows = 64;
constexpr int64_t kTileSize = kTileRows * kMaxHidden;
// Parts of rows for the weight gradients: a fixed count (not the thread
// count), so that the sums are added in the same order on any machine.
constexpr int64_t kMaxParts = 64;

template <class T>
using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
Eigen::Map<Array<T>> array(T* p, int64_t n) {
  return Eigen::Map<Array<T>>(p, n);
}
template <class T>
Eigen::Map<const Array<T>> array(const T* p, int64_t n) {
  return Eigen::Map<const Array<T>>(p, n);
}

// {m, H} row-major matrices (one column: column-major, the same layout) and
// H x H ones, for Eigen's fixed-width products.
template <int H, class T>
using Rows = Eigen::Matrix<T, Eigen::Dynamic, H, H == 1 ? Eigen::ColMajor : Eigen::RowMajor>;
template <int H, class T>
using Square = Eigen::Matrix<T, H, H, H == 1 ? Eigen::ColMajor : Eigen::RowMajor>;
template <class T, int H>
using RowVector = Eigen::Matrix<T, 1, H>;
template <int H, class T>
Eigen::Map<Rows<H, T>> rows_of(T* p, int64_t m) {
  return Eigen::Map<Rows<H, T>>(p, m, H);
}
template <int H, class T>
Eigen::Map<const Rows<H, T>> rows_of(const T* p, int64_t m) {
  return Eigen::Map<const Rows<H, T>>(p, m, H);
}

// One tile's intermediate values, {m, H} row-major each (m <= kTileRows).
template <class T>
struct alignas(64) Tile {
  T drop_gelu[kTileSize];  // dropout factors: scale, 0, or 1 without a mask
  T drop_glu[kTileSize];
  T cdf[kTileSize];  // Phi(y), the normal CDF in GELU(y) = y Phi(y)
  T g[kTileSize];    // dropout_1(GELU(y))
  T value[kTileSize];
  T gate[kTileSize];
};

template <class T>
void dropout_factors(const uint8_t* keep, double scale, T* factor, int64_t n) {
  if (keep == nullptr) {
    std::fill(factor, factor + n, T(1));
    return;
  }
  const T s = static_cast<T>(scale);
  for (int64_t i = 0; i < n; ++i) factor[i] = keep[i] ? s : T(0);
}

// W^T of the value and gate halves of W {2H, H} (torch::nn::Linear's {out, in}).
template <int H, class T>
struct Transposed {
  explicit Transposed(const T* weight) {
    for (int j = 0; j < H; ++j)
      for (int k = 0; k < H; ++k) {
        value(k, j) = weight[j * H + k];
        gate(k, j) = weight[(H + j) * H + k];
      }
  }
  Square<H, T> value, gate;
};

// Rows [r0, r0 + m) up to the GLU's input and output: the dropout factors,
// Phi(y), g, and [value | gate] = g W^T + b. H is a compile-time constant
// (every width up to kMaxHidden is instantiated), so that the products are
// Eigen's fixed-width ones, vectorised along a row.
template <int H, class T>
void front(const T* y, const Weights<T>& w, const Transposed<H, T>& wt, const Dropout& d, int64_t r0, int64_t m,
           Tile<T>& t) {
  const int64_t n = m * H, i0 = r0 * H;
  dropout_factors(d.keep_gelu ? d.keep_gelu + i0 : nullptr, d.scale, t.drop_gelu, n);
  dropout_factors(d.keep_glu ? d.keep_glu + i0 : nullptr, d.scale, t.drop_glu, n);
  const auto Y = array(y + i0, n);
  array(t.cdf, n) = T(0.5) * (T(1) + (Y * T(0.70710678118654752440)).erf());
  array(t.g, n) = Y * array(t.cdf, n) * array(t.drop_gelu, n);
  const auto G = rows_of<H>(static_cast<const T*>(t.g), m);
  rows_of<H>(t.value, m).noalias() = G.lazyProduct(wt.value);
  rows_of<H>(t.gate, m).noalias() = G.lazyProduct(wt.gate);
  rows_of<H>(t.value, m).rowwise() += Eigen::Map<const RowVector<T, H>>(w.bias);
  rows_of<H>(t.gate, m).rowwise() += Eigen::Map<const RowVector<T, H>>(w.bias + H);
}

// Calls tile(r0, m) for the tiles of rows [first, last).
template <class F>
void for_each_tile(int64_t first, int64_t last, const F& tile) {
  for (int64_t r0 = first; r0 < last; r0 += kTileRows) tile(r0, std::min(kTileRows, last - r0));
}

template <int H, class T>
void forward_rows(const T* y, const T* x, const Weights<T>& w, const Dropout& d, T* out, int64_t rows) {
  const Transposed<H, T> wt(w.weight);
  const int64_t tiles = (rows + kTileRows - 1) / kTileRows;
  at::parallel_for(0, tiles, 4, [&](int64_t begin, int64_t end) {
    Tile<T> t;
    for_each_tile(begin * kTileRows, std::min(rows, end * kTileRows), [&](int64_t r0, int64_t m) {
      front<H>(y, w, wt, d, r0, m, t);
      const int64_t n = m * H, i0 = r0 * H;
      const auto A = array(t.gate, n);
      array(out + i0, n) = array(x + i0, n) + array(t.drop_glu, n) * array(t.value, n) / (T(1) + (-A).exp());
    });
  });
}

// One part's share of dL/dW and dL/db (added to gw_value, gw_gate, gb), and
// dL/dy of its rows [first, last).
template <int H, class T>
void backward_part(const T* y, const Weights<T>& w, const Transposed<H, T>& wt, const Dropout& d,
                   const T* grad_out, T* grad_y, int64_t first, int64_t last, Square<H, T>& gw_value,
                   Square<H, T>& gw_gate, RowVector<T, 2 * H>& gb) {
  Tile<T> t;
  alignas(64) T grad_value[kTileSize], grad_gate[kTileSize], grad_g[kTileSize], sig[kTileSize];
  for_each_tile(first, last, [&](int64_t r0, int64_t m) {
    front<H>(y, w, wt, d, r0, m, t);
    const int64_t n = m * H, i0 = r0 * H;
    const auto V = array(t.value, n), S = array(sig, n);
    array(sig, n) = T(1) / (T(1) + (-array(t.gate, n)).exp());
    // dL/d(v .* sigmoid(a)) = dL/dout d_2, in grad_g until dL/dg is written there
    array(grad_g, n) = array(grad_out + i0, n) * array(t.drop_glu, n);
    const auto upstream = array(grad_g, n);
    array(grad_value, n) = upstream * S;
    array(grad_gate, n) = upstream * V * S * (T(1) - S);
    const auto G = rows_of<H>(static_cast<const T*>(t.g), m);
    const auto DV = rows_of<H>(static_cast<const T*>(grad_value), m);
    const auto DA = rows_of<H>(static_cast<const T*>(grad_gate), m);
    // dL/dW_v = dV^T g, dL/dW_a = dA^T g ({out, in}), dL/db = column sums.
    // (row by row: outer products that stay in registers, where the product
    // over the tile's rows walked DV and DA down their columns)
    for (int64_t r = 0; r < m; ++r) {
      gw_value.noalias() += DV.row(r).transpose() * G.row(r);
      gw_gate.noalias() += DA.row(r).transpose() * G.row(r);
    }
    gb.template head<H>() += DV.colwise().sum();
    gb.template tail<H>() += DA.colwise().sum();
    // dL/dg = dV W_v + dA W_a.
    rows_of<H>(grad_g, m).noalias() = DV.lazyProduct(wt.value.transpose()) + DA.lazyProduct(wt.gate.transpose());
    // dL/dy = dL/dg d_1 GELU'(y), GELU'(y) = Phi(y) + y phi(y).
    const auto Y = array(y + i0, n);
    array(grad_y + i0, n) = array(grad_g, n) * array(t.drop_gelu, n) *
                            (array(t.cdf, n) + Y * T(0.39894228040143267794) * (T(-0.5) * Y * Y).exp());
  });
}

template <int H, class T>
void backward_rows(const T* y, const Weights<T>& w, const Dropout& d, const T* grad_out, T* grad_y, T* grad_weight,
                   T* grad_bias, int64_t rows) {
  const Transposed<H, T> wt(w.weight);
  // Parts of equal whole numbers of tiles (the last may be short), at most
  // kMaxParts: a function of the row count alone.
  const int64_t tiles = std::max<int64_t>(1, (rows + kTileRows - 1) / kTileRows);
  const int64_t part_tiles = (tiles + kMaxParts - 1) / kMaxParts;
  const int64_t parts = (tiles + part_tiles - 1) / part_tiles;
  const int64_t part_rows = part_tiles * kTileRows;
  struct Sums {
    Square<H, T> value = Square<H, T>::Zero(), gate = Square<H, T>::Zero();
    RowVector<T, 2 * H> bias = RowVector<T, 2 * H>::Zero();
  };
  std::vector<Sums, Eigen::aligned_allocator<Sums>> sums(parts);
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      backward_part<H>(y, w, wt, d, grad_out, grad_y, std::min(rows, p * part_rows),
                       std::min(rows, (p + 1) * part_rows), sums[p].value, sums[p].gate, sums[p].bias);
  });
  Sums total;
  for (const Sums& part : sums) {  // in part order
    total.value += part.value;
    total.gate += part.gate;
    total.bias += part.bias;
  }
  for (int j = 0; j < H; ++j)
    for (int k = 0; k < H; ++k) {
      grad_weight[j * H + k] = total.value(j, k);
      grad_weight[(H + j) * H + k] = total.gate(j, k);
    }
  for (int j = 0; j < 2 * H; ++j) grad_bias[j] = total.bias(j);
}

}  // namespace

template <class T>
void forward(const T* y, const T* x, Weights<T> w, Dropout d, T* out, int64_t rows, int64_t hidden) {
  with_hidden(hidden, "narrow_mix", [&](auto h) { forward_rows<decltype(h)::value>(y, x, w, d, out, rows); });
}

template <class T>
void backward(const T* y, Weights<T> w, Dropout d, const T* grad_out, T* grad_y, T* grad_weight, T* grad_bias,
              int64_t rows, int64_t hidden) {
  with_hidden(hidden, "narrow_mix", [&](auto h) {
    backward_rows<decltype(h)::value>(y, w, d, grad_out, grad_y, grad_weight, grad_bias, rows);
  });
}

template void forward<float>(const float*, const float*, Weights<float>, Dropout, float*, int64_t, int64_t);
template void forward<double>(const double*, const double*, Weights<double>, Dropout, double*, int64_t, int64_t);
template void backward<float>(const float*, Weights<float>, Dropout, const float*, float*, float*, float*, int64_t,
                              int64_t);
template void backward<double>(const double*, Weights<double>, Dropout, const double*, double*, double*, double*,
                               int64_t, int64_t);

}  // namespace compressm::kernels::narrow_mix
