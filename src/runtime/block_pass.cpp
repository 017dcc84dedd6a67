#include "runtime/block_pass.h"

#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>  // Array::erf (vectorised, a couple of ulp)

namespace compressm::runtime {
namespace {

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

}  // namespace

BlockState zero_state(const BlockWeights& w) { return {VectorF::Zero(2 * w.lambda_re.size())}; }

void run_block(const BlockWeights& w, Eigen::Ref<MatrixF> h, BlockState& state, BlockScratch& s) {
  // z = (h - mean) / sqrt(var + eps)
  s.z = (h.array().colwise() * w.norm_scale.array()).colwise() + w.norm_shift.array();
  recurrence(w, s.z, state, s);
  s.y.array() += s.z.array().colwise() * w.d.array();  // + D z
  // GELU(y) = y/2 (1 + erf(y / sqrt 2))
  s.y.array() = 0.5f * s.y.array() * (1.0f + (s.y.array() * static_cast<float>(M_SQRT1_2)).erf());
  s.gate.noalias() = w.glu_gate_weight * s.y;
  s.gate.colwise() += w.glu_gate_bias;
  s.z.noalias() = w.glu_value_weight * s.y;  // z is free again: the GLU value
  s.z.colwise() += w.glu_value_bias;
  // sigmoid(a) = 1 / (1 + exp(-a))
  h.array() += s.z.array() / (1.0f + (-s.gate.array()).exp());
}

}  // namespace compressm::runtime
