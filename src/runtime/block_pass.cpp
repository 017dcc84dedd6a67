#include "runtime/block_pass.h"

#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>  // Array::erf (vectorised, a couple of ulp)

namespace compressm::runtime {
namespace {

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;

// For each column k of z: x_k = lambda .* x_{k-1} + Bt z_k, y_k = Re(C x_k).
void recurrence(const BlockWeights& w, const MatrixF& z, BlockState& state, BlockScratch& s) {
  const Eigen::Index n = w.lambda_re.size();
  const auto l_re = w.lambda_re.array(), l_im = w.lambda_im.array();
  s.y.resize(z.rows(), z.cols());
  for (Eigen::Index k = 0; k < z.cols(); ++k) {
    s.next.noalias() = w.b * z.col(k);  // Bt z_k, {2N}
    const auto x_re = state.x.head(n).array(), x_im = state.x.tail(n).array();
    // (a + ib)(c + id) = (ac - bd) + i(ad + bc)
    s.next.head(n).array() += l_re * x_re - l_im * x_im;
    s.next.tail(n).array() += l_re * x_im + l_im * x_re;
    state.x.swap(s.next);
    s.y.col(k).noalias() = w.c_t.transpose() * state.x;  // C_re x_re - C_im x_im
  }
}

// Per-channel affine map of a {H, T} block, v[j, t] = v[j, t] * a[j] + b[j]
// (a or b null: 1 or 0). Eigen's colwise broadcast runs scalar here: a column
// of H = 8 floats is shorter than one AVX-512 packet.
void per_channel(MatrixF& v, const float* a, const float* b) {
  const Eigen::Index h = v.rows(), steps = v.cols();
  for (Eigen::Index j = 0; j < h; ++j) {
    const float scale = a ? a[j] : 1.0f, shift = b ? b[j] : 0.0f;
    float* p = v.data() + j;
    for (Eigen::Index t = 0; t < steps; ++t) p[t * h] = p[t * h] * scale + shift;
  }
}

}  // namespace

BlockState zero_state(const BlockWeights& w) { return {VectorF::Zero(2 * w.lambda_re.size())}; }

void run_block(const BlockWeights& w, MatrixF& h, BlockState& state, BlockScratch& s) {
  const Eigen::Index size = h.size();
  // z = (h - mean) / sqrt(var + eps)
  s.z = h;
  per_channel(s.z, w.norm_scale.data(), w.norm_shift.data());
  recurrence(w, s.z, state, s);
  for (Eigen::Index t = 0; t < h.cols(); ++t) s.y.col(t).array() += s.z.col(t).array() * w.d.array();  // + D z
  // GELU(y) = y/2 (1 + erf(y / sqrt 2)), on the flat buffer
  ArrayMap y(s.y.data(), size);
  y = 0.5f * y * (1.0f + (y * static_cast<float>(M_SQRT1_2)).erf());
  s.gate.noalias() = w.glu_gate_weight * s.y;
  per_channel(s.gate, nullptr, w.glu_gate_bias.data());
  s.z.noalias() = w.glu_value_weight * s.y;  // z is free again: the GLU value
  per_channel(s.z, nullptr, w.glu_value_bias.data());
  // h += value * sigmoid(gate), sigmoid(a) = 1 / (1 + exp(-a))
  ArrayMap(h.data(), size) += ArrayMap(s.z.data(), size) / (1.0f + (-ArrayMap(s.gate.data(), size)).exp());
}

}  // namespace compressm::runtime
