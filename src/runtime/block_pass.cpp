#include "runtime/block_pass.h"

#include <cmath>

namespace compressm::runtime {
namespace {

// x_k = lambda .* x_{k-1} + (Bt z)_k over the columns, in place: on return
// column k of (re, im) holds x_k.
void scan(const BlockWeights& w, MatrixF& re, MatrixF& im, BlockState& state) {
  const auto l_re = w.lambda_re.array(), l_im = w.lambda_im.array();
  auto x_re = state.re.array(), x_im = state.im.array();
  for (Eigen::Index k = 0; k < re.cols(); ++k) {
    // (a + ib)(c + id) = (ac - bd) + i(ad + bc)
    re.col(k).array() += l_re * x_re - l_im * x_im;
    im.col(k).array() += l_re * x_im + l_im * x_re;
    x_re = re.col(k).array();
    x_im = im.col(k).array();
  }
}

float gelu(float v) { return 0.5f * v * (1.0f + std::erf(v * static_cast<float>(M_SQRT1_2))); }
float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

}  // namespace

BlockState zero_state(const BlockWeights& w) {
  const Eigen::Index n = w.lambda_re.size();
  return {VectorF::Zero(n), VectorF::Zero(n)};
}

void run_block(const BlockWeights& w, Eigen::Ref<MatrixF> h, BlockState& state, BlockScratch& s) {
  // z = (h - mean) / sqrt(var + eps)
  s.z = (h.array().colwise() * w.norm_scale.array()).colwise() + w.norm_shift.array();
  s.x_re.noalias() = w.b_re * s.z;  // {N, T}
  s.x_im.noalias() = w.b_im * s.z;
  scan(w, s.x_re, s.x_im, state);
  // y = Re(C x) + D z = C_re x_re - C_im x_im + D z
  s.y.noalias() = w.c_re * s.x_re;
  s.y.noalias() -= w.c_im * s.x_im;
  s.y.array() += s.z.array().colwise() * w.d.array();
  s.y = s.y.unaryExpr(&gelu);
  s.gate.noalias() = w.glu_gate_weight * s.y;
  s.gate.colwise() += w.glu_gate_bias;
  s.z.noalias() = w.glu_value_weight * s.y;  // z is free again: the GLU value
  s.z.colwise() += w.glu_value_bias;
  h.array() += s.z.array() * s.gate.unaryExpr(&sigmoid).array();
}

}  // namespace compressm::runtime
