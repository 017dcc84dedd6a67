// Helpers of the LRU block tests (tests/nn): tensor distance, leaf copies,
// the block's mix stage composed from LibTorch's ops, and a block's training
// pass run two ways (its own forward, or its stages by hand) after the same
// manual_seed, so that both draw the same dropout masks in the same order.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "nn/lru_model.h"

namespace compressm::testing {

inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Two blocks of one initialisation (manual_seed(seed) before each), BlockOps
// `ops` and kComposed, both in evaluation mode: {ops block, composed block}.
inline std::pair<nn::LruBlock, nn::LruBlock> eval_twins(int64_t state, int64_t hidden, double drop_rate,
                                                        nn::BlockOps ops, uint64_t seed) {
  torch::manual_seed(seed);
  nn::LruBlock block(state, hidden, drop_rate, nn::LruInit{}, nn::Precision::kFp32, ops);
  torch::manual_seed(seed);
  nn::LruBlock composed(state, hidden, drop_rate, nn::LruInit{}, nn::Precision::kFp32, nn::BlockOps::kComposed);
  block->eval();
  composed->eval();
  return {block, composed};
}

// A leaf copy of t for gradients.
inline torch::Tensor leaf(const torch::Tensor& t) { return t.detach().clone().requires_grad_(true); }

// The mix stage with LibTorch's ops, given the masks (undefined: no dropout):
//   out = x + d2 (v .* sigmoid(a)),  [v | a] = d1 GELU(y) W^T + b,  W = [W_v; W_a]
inline torch::Tensor composed_mix(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& w,
                                  const torch::Tensor& b, const torch::Tensor& keep_gelu, const torch::Tensor& keep_glu,
                                  double p) {
  torch::Tensor g = torch::gelu(y);
  if (keep_gelu.defined()) g = g * keep_gelu.to(y.scalar_type()) / (1.0 - p);
  const torch::Tensor vg = torch::nn::functional::linear(g, w, b);
  const int64_t h = y.size(-1);
  torch::Tensor z = vg.narrow(-1, 0, h) * torch::sigmoid(vg.narrow(-1, h, h));
  if (keep_glu.defined()) z = z * keep_glu.to(y.scalar_type()) / (1.0 - p);
  return x + z;
}

// {output, dL/dx, dL/dparameter for every parameter of the block} of
// (forward(x) * upstream).sum(), the block's gradients zeroed first and
// torch::manual_seed(seed) set just before forward.
inline std::vector<torch::Tensor> block_run(nn::LruBlock& block, const torch::Tensor& x,
                                            const torch::Tensor& upstream, uint64_t seed,
                                            const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  block->zero_grad();
  const torch::Tensor xl = leaf(x);
  torch::manual_seed(seed);
  const torch::Tensor out = forward(xl);
  (out * upstream).sum().backward();
  std::vector<torch::Tensor> result{out.detach(), xl.grad()};
  for (const auto& p : block->parameters()) result.push_back(p.grad().clone());
  return result;
}

// Every tensor of `got` within relative * (largest entry of `want`) + 1e-7 of `want`.
inline void expect_runs_match(const std::vector<torch::Tensor>& got, const std::vector<torch::Tensor>& want,
                              double relative) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LT(max_abs(got[i], want[i]), relative * want[i].abs().max().item<double>() + 1e-7) << "output " << i;
}

}  // namespace compressm::testing
