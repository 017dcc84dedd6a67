// The narrow block's mix stage as one CPU op (nn::narrow_mix,
// kernels/narrow_mix.h) against LibTorch's composition of the same math with
// the same dropout masks: values and the gradients of y, x, W and b, in
// float64 (the math) and float32 (Eigen's vectorised erf and exp), for
// every width and row counts that leave partial tiles; a non-contiguous
// input; its independence of the thread count; the block that runs it by
// default on the CPU; the CPU keep masks; argument errors.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "nn/fused_ops.h"
#include "nn/lru_model.h"
#include "support/block_runs.h"

namespace compressm::nn {
namespace {

using testing::composed_mix;
using testing::leaf;
using testing::max_abs;

struct Case {
  int64_t batch, length, hidden;
  double p;
};

// Output and the four gradients of narrow_mix and of the composition.
std::vector<std::pair<torch::Tensor, torch::Tensor>> both_ways(const Case& c, torch::ScalarType dtype) {
  torch::manual_seed(21);
  const auto options = torch::TensorOptions().dtype(dtype);
  const torch::Tensor y = 2 * torch::randn({c.batch, c.length, c.hidden}, options);
  const torch::Tensor x = torch::randn({c.batch, c.length, c.hidden}, options);
  const torch::Tensor w = torch::randn({2 * c.hidden, c.hidden}, options) / std::sqrt(double(c.hidden));
  const torch::Tensor b = 0.3 * torch::randn({2 * c.hidden}, options);
  const torch::Tensor upstream = torch::randn({c.batch, c.length, c.hidden}, options);
  const torch::Tensor keep_gelu = dropout_keep_mask(y.sizes(), c.p, y.device());
  const torch::Tensor keep_glu = dropout_keep_mask(y.sizes(), c.p, y.device());
  std::vector<torch::Tensor> fused_side, composed_side;
  for (const bool fused : {true, false}) {
    const torch::Tensor yl = leaf(y), xl = leaf(x), wl = leaf(w), bl = leaf(b);
    const torch::Tensor out = fused ? narrow_mix(yl, xl, wl, bl, keep_gelu, keep_glu, c.p)
                                    : composed_mix(yl, xl, wl, bl, keep_gelu, keep_glu, c.p);
    (out * upstream).sum().backward();
    (fused ? fused_side : composed_side) = {out.detach(), yl.grad(), xl.grad(), wl.grad(), bl.grad()};
  }
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;
  for (size_t i = 0; i < fused_side.size(); ++i) pairs.emplace_back(fused_side[i], composed_side[i]);
  return pairs;
}

const char* const kNames[] = {"out", "dL/dy", "dL/dx", "dL/dW", "dL/db"};

TEST(NarrowMix, MatchesTheCompositionInFloat64AndFloat32) {
  // Rows 1, 2 x 35 = 70 (a partial second tile), 3 x 333 (16 tiles, parts of one tile each), 2 x 4000 (parts of
  // several tiles), with and without dropout; then every width 1 .. 16 (each is compiled apart) on 2 x 150 rows.
  std::vector<Case> cases{Case{1, 1, 1, 0.0}, Case{2, 35, 5, 0.3},  Case{3, 333, 8, 0.1},
                          Case{2, 4000, 8, 0.1}, Case{2, 70, 16, 0.5}, Case{1, 130, 3, 0.0}};
  for (int64_t h = 1; h <= 16; ++h) cases.push_back(Case{2, 150, h, 0.2});
  for (const Case& c : cases) {
    for (const auto dtype : {torch::kDouble, torch::kFloat}) {
      SCOPED_TRACE("B=" + std::to_string(c.batch) + " L=" + std::to_string(c.length) + " H=" +
                   std::to_string(c.hidden) + " p=" + std::to_string(c.p) + " " + std::string(c10::toString(dtype)));
      const auto pairs = both_ways(c, dtype);
      // float64: libm erf and exp, the same math in another order; float32: Eigen's erf is within 4e-7.
      // Relative to the largest entry, or absolute where that is below 1.
      const double tolerance = dtype == torch::kDouble ? 1e-12 : 2e-5;
      for (size_t i = 0; i < pairs.size(); ++i) {
        const double scale = pairs[i].second.abs().max().item<double>();
        EXPECT_LE(max_abs(pairs[i].first, pairs[i].second), tolerance * std::max(scale, 1.0)) << kNames[i];
      }
    }
  }
}

// A non-contiguous input (a transposed view) gives what its contiguous copy does.
TEST(NarrowMix, TakesNonContiguousInputs) {
  torch::manual_seed(27);
  const torch::Tensor y = torch::randn({8, 30, 2}).transpose(0, 2), x = torch::randn({2, 30, 8});
  const torch::Tensor w = torch::randn({16, 8}), b = torch::randn({16});
  ASSERT_FALSE(y.is_contiguous());
  const torch::Tensor keep = dropout_keep_mask(x.sizes(), 0.2, x.device());
  EXPECT_TRUE(
      torch::equal(narrow_mix(y, x, w, b, keep, keep, 0.2), narrow_mix(y.contiguous(), x, w, b, keep, keep, 0.2)));
}

// A wrong mask, a missing dropout scale or a swapped gate would show.
TEST(NarrowMix, TheMasksMatter) {
  torch::manual_seed(22);
  const torch::Tensor y = torch::randn({2, 50, 8}), x = torch::randn({2, 50, 8});
  const torch::Tensor w = torch::randn({16, 8}), b = torch::randn({16});
  const torch::Tensor k1 = dropout_keep_mask(y.sizes(), 0.4, y.device());
  const torch::Tensor k2 = dropout_keep_mask(y.sizes(), 0.4, y.device());
  const torch::Tensor out = narrow_mix(y, x, w, b, k1, k2, 0.4);
  EXPECT_GT(max_abs(out, narrow_mix(y, x, w, b, k2, k1, 0.4)), 1e-3);
  EXPECT_GT(max_abs(out, narrow_mix(y, x, w, b, k1, k2, 0.2)), 1e-3);
  // Where the GLU's mask drops, the output is the residual exactly.
  const torch::Tensor dropped = k2 == 0;
  EXPECT_TRUE(torch::equal(out.masked_select(dropped), x.masked_select(dropped)));
}

TEST(NarrowMix, GradientsDoNotDependOnTheThreadCount) {
  const Case c{4, 3000, 8, 0.1};
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = both_ways(c, torch::kFloat);
  at::set_num_threads(2);
  const auto two = both_ways(c, torch::kFloat);
  at::set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i].first, two[i].first)) << kNames[i];
}

void expect_error(const std::function<void()>& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with \"" << words << "\"";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(NarrowMix, BadArgumentsAreClearErrors) {
  const torch::Tensor y = torch::randn({2, 3, 4}), w = torch::randn({8, 4}), b = torch::randn({8});
  const torch::Tensor none;
  expect_error([&] { narrow_mix(torch::randn({2, 3, 17}), torch::randn({2, 3, 17}), w, b, none, none, 0.0); },
               "1 <= H <= 16");
  expect_error([&] { narrow_mix(y.to(torch::kBFloat16), y, w, b, none, none, 0.0); }, "float32 or float64");
  expect_error([&] { narrow_mix(y, torch::randn({2, 4, 4}), w, b, none, none, 0.0); }, "x must be");
  expect_error([&] { narrow_mix(y, y, torch::randn({4, 8}), b, none, none, 0.0); }, "weight must be {8, 4}");
  expect_error([&] { narrow_mix(y, y, w, torch::randn({4}), none, none, 0.0); }, "bias must be {8}");
  expect_error([&] { narrow_mix(y, y, w.to(torch::kDouble), b, none, none, 0.0); }, "weight must have y's dtype");
  expect_error([&] { narrow_mix(y, y, w, b, torch::ones({2, 3, 5}, torch::kByte), none, 0.1); },
               "narrow_mix: keep mask must be");
  expect_error([&] { narrow_mix(y, y, w, b, none, none, 1.0); }, "dropout rate must be in [0, 1)");
  EXPECT_FALSE(narrow_mix_support(torch::randn({2, 17})));
  EXPECT_FALSE(narrow_mix_support(torch::randn({2, 8}).to(torch::kHalf)));
  EXPECT_TRUE(narrow_mix_support(torch::randn({2, 16}, torch::kDouble)));
}

// On the CPU a narrow fp32 block runs its mix stage as narrow_mix by
// default (BlockOps::kAuto), and computes what the composed block does:
// without dropout against BlockOps::kComposed (values, every gradient,
// evaluation mode); with dropout against the block's stages by hand with the
// same draws (the GELU's mask, then the GLU's).
TEST(NarrowMix, TheAutoBlockRunsItOnTheCpu) {
  torch::manual_seed(23);
  LruBlock automatic(16, 8, 0.0, LruInit{}, Precision::kFp32, BlockOps::kAuto);
  torch::manual_seed(23);
  LruBlock plain(16, 8, 0.0, LruInit{}, Precision::kFp32, BlockOps::kComposed);
  const torch::Tensor x = torch::randn({3, 90, 8}), upstream = torch::randn({3, 90, 8});
  EXPECT_TRUE(automatic->narrow_mix_stage(x));
  EXPECT_FALSE(plain->narrow_mix_stage(x));
  EXPECT_FALSE(LruBlock(16, 8, 0.0, LruInit{}, Precision::kBf16, BlockOps::kAuto)->narrow_mix_stage(x));
  EXPECT_FALSE(
      LruBlock(16, 24, 0.0, LruInit{}, Precision::kFp32, BlockOps::kAuto)->narrow_mix_stage(torch::randn({3, 90, 24})));
  const torch::Tensor xa = leaf(x), xb = leaf(x);
  const torch::Tensor a = automatic->forward(xa), b = plain->forward(xb);
  EXPECT_LT(max_abs(a, b), 1e-5 * b.abs().max().item<double>());
  (a * upstream).sum().backward();
  (b * upstream).sum().backward();
  EXPECT_LT(max_abs(xa.grad(), xb.grad()), 1e-5 * xb.grad().abs().max().item<double>());
  const auto pa = automatic->named_parameters();
  for (const auto& item : plain->named_parameters()) {
    const torch::Tensor& ga = pa[item.key()].grad();
    ASSERT_TRUE(ga.defined()) << item.key();
    EXPECT_LT(max_abs(ga, item.value().grad()), 1e-5 * item.value().grad().abs().max().item<double>() + 1e-7)
        << item.key();
  }
  automatic->eval();
  plain->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs(automatic->forward(x), plain->forward(x)), 1e-5 * b.abs().max().item<double>());
}

// Evaluation drops nothing: with dropout 0.3 the auto block's evaluation
// output is the composed block's (same weights), and the same on every run.
TEST(NarrowMix, TheAutoBlockDoesNotDropInEvaluation) {
  auto [automatic, plain] = testing::eval_twins(16, 8, 0.3, BlockOps::kAuto, 27);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 70, 8});
  ASSERT_TRUE(automatic->narrow_mix_stage(x));
  const torch::Tensor first = automatic->forward(x), reference = plain->forward(x);
  EXPECT_TRUE(torch::equal(automatic->forward(x), first));
  EXPECT_LT(max_abs(first, reference), 1e-5 * reference.abs().max().item<double>());
}

// An empty batch: an empty output, and zero (not undefined) gradients of W and b.
TEST(NarrowMix, AnEmptyBatchHasZeroWeightGradients) {
  const torch::Tensor y = leaf(torch::randn({0, 5, 8})), x = leaf(torch::randn({0, 5, 8}));
  const torch::Tensor w = leaf(torch::randn({16, 8})), b = leaf(torch::randn({16}));
  const torch::Tensor keep = dropout_keep_mask(y.sizes(), 0.1, y.device());
  const torch::Tensor out = narrow_mix(y, x, w, b, keep, keep, 0.1);
  EXPECT_EQ(out.sizes(), y.sizes());
  out.sum().backward();
  ASSERT_TRUE(w.grad().defined() && b.grad().defined());
  EXPECT_EQ(w.grad().abs().max().item<double>(), 0.0);
  EXPECT_EQ(b.grad().abs().max().item<double>(), 0.0);
  EXPECT_EQ(y.grad().sizes(), y.sizes());
}

TEST(NarrowMix, TheAutoBlockDrawsItsMasksInOrder) {
  torch::manual_seed(24);
  LruBlock block(16, 8, 0.3, LruInit{}, Precision::kFp32, BlockOps::kAuto);
  const torch::Tensor x = torch::randn({2, 40, 8}), upstream = torch::randn({2, 40, 8});
  const auto by_hand = [&](const torch::Tensor& xl) {
    const torch::Tensor y = block->lru(block->normalize(xl), Precision::kFp32);
    const torch::Tensor keep_gelu = dropout_keep_mask(y.sizes(), 0.3, y.device());
    const torch::Tensor keep_glu = dropout_keep_mask(y.sizes(), 0.3, y.device());
    return composed_mix(y, xl, torch::cat({block->glu_value->weight, block->glu_gate->weight}),
                        torch::cat({block->glu_value->bias, block->glu_gate->bias}), keep_gelu, keep_glu, 0.3);
  };
  const auto own = [&](const torch::Tensor& xl) { return block->forward(xl); };
  testing::expect_runs_match(testing::block_run(block, x, upstream, 25, own),
                             testing::block_run(block, x, upstream, 25, by_hand), 2e-5);
}

// The CPU keep masks come from the default generator: the same seed, the
// same masks; the next mask is another one.
TEST(NarrowMix, CpuKeepMasksFollowTheGeneratorSeed) {
  torch::manual_seed(26);
  const torch::Tensor first = dropout_keep_mask({300, 8}, 0.1, torch::kCPU);
  const torch::Tensor second = dropout_keep_mask({300, 8}, 0.1, torch::kCPU);
  torch::manual_seed(26);
  EXPECT_TRUE(torch::equal(dropout_keep_mask({300, 8}, 0.1, torch::kCPU), first));
  EXPECT_FALSE(torch::equal(first, second));
}

}  // namespace
}  // namespace compressm::nn
