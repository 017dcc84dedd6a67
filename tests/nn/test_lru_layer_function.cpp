// The fused LRU layer op against the unfused LibTorch composition (values and
// the gradients of all eight inputs), against finite differences, and through
// the layer module's parameterisation; the bf16 layer of wide layers
// (lru_layer_bf16) against the composition with the same rounding points.
#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "linalg/lru_parameters.h"
#include "nn/fused_ops.h"
#include "nn/lru_layer.h"
#include "nn/lru_layer_function.h"
#include "support/record_callback.h"

namespace compressm::nn {
namespace {

struct Case {
  int64_t batch, length, state, hidden;
};

// |lambda| in [0.5, 0.999] (long memory, as in a trained LRU); dL/dy = upstream.
struct Problem {
  LruLayerInputs in;
  torch::Tensor upstream;
};

Problem random_problem(torch::ScalarType dtype, Case c, uint64_t seed) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(dtype);
  const torch::Tensor radius = 0.5 + 0.499 * torch::rand({c.state}, o);
  const torch::Tensor phase = 6.283 * torch::rand({c.state}, o);
  Problem p;
  p.in = {radius * torch::cos(phase),           radius * torch::sin(phase),
          torch::randn({c.state, c.hidden}, o), torch::randn({c.state, c.hidden}, o),
          torch::randn({c.hidden, c.state}, o), torch::randn({c.hidden, c.state}, o),
          torch::randn({c.hidden}, o),          torch::randn({c.batch, c.length, c.hidden}, o)};
  p.upstream = torch::randn({c.batch, c.length, c.hidden}, o);
  return p;
}

std::vector<torch::Tensor> as_list(const LruLayerInputs& in) {
  return {in.lambda_re, in.lambda_im, in.B_re, in.B_im, in.C_re, in.C_im, in.D, in.u};
}

// y, then dL/d of each input for L = sum(upstream .* y).
template <class Op>
std::vector<torch::Tensor> evaluate(const Problem& p, Op op) {
  std::vector<torch::Tensor> leaves;
  for (const torch::Tensor& t : as_list(p.in)) leaves.push_back(t.clone().requires_grad_(true));
  const LruLayerInputs in{leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], leaves[7]};
  const torch::Tensor y = op(in);
  (y * p.upstream).sum().backward();
  std::vector<torch::Tensor> out{y.detach()};
  for (const torch::Tensor& t : leaves) out.push_back(t.grad());
  return out;
}

// Relative to the largest reference entry (dL/dlambda is exactly 0 when L = 1).
double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

const char* const kNames[] = {"y", "lambda_re", "lambda_im", "B_re", "B_im", "C_re", "C_im", "D", "u"};

void expect_parity(torch::ScalarType dtype, Case c, double tolerance) {
  const Problem p = random_problem(dtype, c, 11);
  const auto fused = evaluate(p, lru_layer);
  const auto unfused = evaluate(p, lru_layer_unfused);
  for (size_t i = 0; i < fused.size(); ++i)
    EXPECT_LT(max_relative(fused[i], unfused[i]), tolerance)
        << kNames[i] << " at B=" << c.batch << " L=" << c.length << " N=" << c.state << " H=" << c.hidden;
}

// Lengths that are not a multiple of the kernel's 32-step chunk, N and H that
// are not multiples of its vector width and tile, and the degenerate sizes.
const Case kCases[] = {{3, 77, 20, 5}, {1, 40, 1, 1}, {2, 33, 70, 3}, {2, 1, 9, 8}, {4, 64, 1, 6}, {1, 31, 33, 1}};

TEST(LruLayerFunction, MatchesUnfusedFloat64) {
  for (const Case& c : kCases) expect_parity(torch::kDouble, c, 1e-10);
}

TEST(LruLayerFunction, MatchesUnfusedFloat32) {
  for (const Case& c : kCases) expect_parity(torch::kFloat, c, 1e-5);
  expect_parity(torch::kFloat, {2, 100, 256, 8}, 1e-5);  // the sMNIST layer's N and H
}

TEST(LruLayerFunction, AcceptsNonContiguousInputs) {
  Problem p = random_problem(torch::kDouble, {3, 29, 10, 4}, 6);
  p.in.u = p.in.u.transpose(1, 2).contiguous().transpose(1, 2);  // {B, L, H} view of {B, H, L}
  p.in.C_re = p.in.C_re.t().contiguous().t();
  ASSERT_FALSE(p.in.u.is_contiguous());
  const auto fused = evaluate(p, lru_layer);
  const auto unfused = evaluate(p, lru_layer_unfused);
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_LT(max_relative(fused[i], unfused[i]), 1e-10) << kNames[i];
}

TEST(LruLayerFunction, GradientsMatchFiniteDifferences) {
  const Problem p = random_problem(torch::kDouble, {2, 37, 6, 3}, 5);
  const auto g = evaluate(p, lru_layer);
  const double h = 1e-6;
  const auto loss_at = [&](const std::vector<torch::Tensor>& t) {
    const LruLayerInputs in{t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]};
    return (lru_layer(in) * p.upstream).sum().item<double>();
  };
  for (size_t which = 0; which < 8; ++which) {
    const int64_t numel = as_list(p.in)[which].numel();
    for (int64_t e : {int64_t(0), numel / 2, numel - 1}) {
      auto plus = as_list(p.in), minus = as_list(p.in);
      plus[which] = plus[which].clone(), minus[which] = minus[which].clone();
      plus[which].view(-1)[e] += h;
      minus[which].view(-1)[e] -= h;
      const double fd = (loss_at(plus) - loss_at(minus)) / (2 * h);
      const double analytic = g[which + 1].view(-1)[e].item<double>();
      EXPECT_NEAR(fd, analytic, 1e-6 * std::max(1.0, std::abs(analytic))) << kNames[which + 1] << " " << e;
    }
  }
}

TEST(LruLayerFunction, ResultDoesNotDependOnThreadCount) {
  const Problem p = random_problem(torch::kDouble, {5, 50, 17, 4}, 3);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = evaluate(p, lru_layer);
  at::set_num_threads(2);
  const auto two = evaluate(p, lru_layer);
  at::set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << kNames[i];
}

TEST(LruLayerFunction, WithoutGradientTheForwardIsTheSame) {
  const Problem p = random_problem(torch::kFloat, {2, 45, 12, 3}, 4);
  const torch::Tensor with_grad = evaluate(p, lru_layer)[0];
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(lru_layer(p.in), with_grad));
}

// The module's parameterisation (nu_log, theta_log, gamma_log ...) through both paths.
TEST(LruLayerFunction, LayerGradientsMatchUnfused) {
  torch::manual_seed(8);
  LruLayer layer(24, 5);
  layer->to(torch::kDouble);
  const torch::Tensor u = torch::randn({3, 41, 5}, torch::kDouble).requires_grad_(true);
  const torch::Tensor upstream = torch::randn({3, 41, 5}, torch::kDouble);
  const auto run = [&](bool fused) {
    layer->zero_grad();
    if (u.grad().defined()) u.mutable_grad().zero_();
    const torch::Tensor y = fused ? layer->forward(u) : layer->forward_unfused(u);
    (y * upstream).sum().backward();
    std::vector<torch::Tensor> out{y.detach(), u.grad().clone()};
    for (const auto& item : layer->named_parameters()) out.push_back(item.value().grad().clone());
    return out;
  };
  const auto fused = run(true), unfused = run(false);
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_LT(max_relative(fused[i], unfused[i]), 1e-10) << i;
}

TEST(LruLayerFunction, BadArgumentsAreRejected) {
  Problem p = random_problem(torch::kFloat, {2, 5, 4, 3}, 1);
  LruLayerInputs wrong = p.in;
  wrong.B_re = torch::zeros({4, 2});
  EXPECT_THROW(lru_layer(wrong), c10::Error);
  wrong = p.in;
  wrong.C_im = torch::zeros({3, 4}, torch::kDouble);
  EXPECT_THROW(lru_layer(wrong), c10::Error);
  wrong = p.in;
  wrong.u = torch::zeros({2, 0, 3});
  EXPECT_THROW(lru_layer(wrong), c10::Error);
  wrong = p.in;
  wrong.u = torch::zeros({2, 5, 3}, torch::kInt);
  EXPECT_THROW(lru_layer(wrong), c10::Error);
}

// lru_layer_bf16 against lru_layer_bf16_composed. Both take their GEMMs from
// LibTorch's bfloat16 matmul and round at the same points, so they differ
// only where the float32 scans' arithmetic (fused multiply-adds, sum order)
// differs in the last bit and a bfloat16 rounding flips: measured 2026-11-26
// at most 4.5e-4 relative to the largest entry (dL/du), the rest below 5e-5.
// N = 70, 5, 93 (a compressed sCIFAR layer's), 3 and 1 are not multiples
// of 4: the op pads its states to 72, 8, 96, 4 and 4 with zero states (the
// composition does not).
const Case kWideCases[] = {{2, 37, 40, 24}, {1, 16, 8, 17}, {3, 50, 70, 32}, {1, 1, 5, 20},
                           {2, 20, 93, 24}, {2, 9, 3, 12},  {1, 6, 1, 5}};

// Sets the bf16 layers' state alignment for a scope and restores the one
// before, also when an assertion leaves the test early.
class StateAlignment {
 public:
  explicit StateAlignment(int64_t alignment) : before_(bf16_state_alignment()) {
    set_bf16_state_alignment(alignment);
  }
  ~StateAlignment() { set_bf16_state_alignment(before_); }
  StateAlignment(const StateAlignment&) = delete;
  StateAlignment& operator=(const StateAlignment&) = delete;

 private:
  int64_t before_;
};

// Also unpadded (set_bf16_state_alignment(1), bench_train_step's baseline).
TEST(LruLayerBf16, MatchesTheCompositionWithTheSameRoundings) {
  for (const int64_t alignment : {4, 1}) {
    const StateAlignment aligned(alignment);
    for (const Case& c : kWideCases) {
      const Problem p = random_problem(torch::kFloat, c, 12);
      const auto bf16 = evaluate(p, lru_layer_bf16);
      const auto composed = evaluate(p, lru_layer_bf16_composed);
      for (size_t i = 0; i < bf16.size(); ++i) {
        ASSERT_TRUE(bf16[i].defined()) << kNames[i];
        EXPECT_EQ(bf16[i].scalar_type(), torch::kFloat) << kNames[i];
        EXPECT_LT(max_relative(bf16[i], composed[i]), 2e-3) << kNames[i] << " at B=" << c.batch << " L=" << c.length
                                                             << " N=" << c.state << " H=" << c.hidden
                                                             << ", states aligned to " << alignment;
      }
    }
  }
  EXPECT_EQ(bf16_state_alignment(), 4) << "the default";
  EXPECT_THROW(set_bf16_state_alignment(2), c10::Error);
  EXPECT_THROW(set_bf16_state_alignment(0), c10::Error);
  EXPECT_EQ(bf16_state_alignment(), 4) << "a rejected alignment changes nothing";
}

// The sizes of the tensor inputs of every aten::mm while a callback is on.
std::mutex mm_mutex;
std::vector<std::vector<int64_t>> mm_input_sizes;
std::unique_ptr<at::ObserverContext> record_mm(const at::RecordFunction& fn) {
  if (std::string(fn.name()) != "aten::mm") return nullptr;
  const std::lock_guard<std::mutex> lock(mm_mutex);
  for (const c10::IValue& v : fn.inputs())
    if (v.isTensor()) mm_input_sizes.push_back(v.toTensor().sizes().vec());
  return nullptr;
}

// The padding really happens: at N = 93 every GEMM of the layer, forward and
// backward, has 2 x 96 = 192 bfloat16 columns or rows for the states, none
// 186; unpadded, the other way round. (H = 24 and B L = 40 are neither.)
TEST(LruLayerBf16, GemmsTakeThePaddedStates) {
  const Problem p = random_problem(torch::kFloat, {2, 20, 93, 24}, 14);
  for (const int64_t alignment : {4, 1}) {
    SCOPED_TRACE("states aligned to " + std::to_string(alignment));
    const StateAlignment aligned(alignment);
    mm_input_sizes.clear();
    {
      const testing::ScopedRecordCallback recording(at::RecordFunctionCallback(record_mm).needsInputs(true));
      evaluate(p, lru_layer_bf16);
    }
    int64_t padded = 0, unpadded = 0;
    for (const auto& sizes : mm_input_sizes) {
      padded += std::count(sizes.begin(), sizes.end(), 192);
      unpadded += std::count(sizes.begin(), sizes.end(), 186);
    }
    // Forward: the B and C GEMMs; backward: dL/ds, dL/dW_out, dL/du, dL/dW_in.
    // The state dimension is an outer one of B, dL/ds, dL/dW_out and dL/dW_in
    // (one input each) and the inner one of C and dL/du (both inputs): 8.
    EXPECT_EQ(mm_input_sizes.size(), 12u) << "two inputs of six GEMMs";
    EXPECT_EQ(alignment == 4 ? padded : unpadded, 8) << "the state dimensions of the six GEMMs";
    EXPECT_EQ(alignment == 4 ? unpadded : padded, 0);
  }
}

// Against the float32 layer: within bfloat16 error, and really rounded.
TEST(LruLayerBf16, IsTheFloat32LayerWithinBfloat16Rounding) {
  const Problem p = random_problem(torch::kFloat, {2, 60, 48, 32}, 13);
  const auto bf16 = evaluate(p, lru_layer_bf16);
  const auto fp32 = evaluate(p, lru_layer);
  for (size_t i = 0; i < bf16.size(); ++i) {
    const double error = max_relative(bf16[i], fp32[i]);
    EXPECT_LT(error, 5e-2) << kNames[i];
    if (i != 7) {  // dL/dD = sum dL/dy .* u: no GEMM rounding in it
      EXPECT_GT(error, 1e-4) << kNames[i];
    }
  }
}

TEST(LruLayerBf16, LayerModuleRoundsOnlyWideLayersInBf16Mode) {
  for (const int64_t h : {8, 16, 17, 24}) {
    torch::manual_seed(3);
    LruLayer layer(12, h);
    const torch::Tensor u = torch::randn({2, 20, h});
    const bool wide = h > 16;
    EXPECT_EQ(LruLayerImpl::bf16_projections(Precision::kBf16, h), wide) << h;
    EXPECT_FALSE(LruLayerImpl::bf16_projections(Precision::kTf32, h)) << h;
    const torch::Tensor y = layer->forward(u, Precision::kBf16);
    EXPECT_TRUE(torch::equal(y, wide ? lru_layer_bf16(layer->inputs(u)) : lru_layer(layer->inputs(u)))) << h;
    EXPECT_TRUE(torch::equal(layer->forward(u, Precision::kFp32), lru_layer(layer->inputs(u)))) << h;
  }
}

// The layer, its skip term and the block's GELU with dropout as one op
// against lru_layer_bf16 followed by gelu_dropout (the same per-element
// functions in the same order): equal up to the compiler's contractions.
TEST(LruLayerBf16, GeluDropoutOpMatchesTheLayerThenGeluDropout) {
  for (const double p : {0.0, 0.25}) {
    for (const Case& c : {Case{2, 37, 40, 24}, Case{3, 90, 20, 17}}) {  // rows 74 and 270: 1 and 2 rows per part
      const Problem problem = random_problem(torch::kFloat, c, 14);
      const torch::Tensor keep = torch::rand(problem.in.u.sizes()).ge(p).to(torch::kByte);
      const torch::Tensor mask = p > 0 ? keep : torch::Tensor();
      const auto fused = evaluate(problem, [&](const LruLayerInputs& in) {
        return lru_layer_bf16_gelu_dropout(in, mask, p);
      });
      const auto composed = evaluate(problem, [&](const LruLayerInputs& in) {
        return gelu_dropout(lru_layer_bf16(in), mask, p, torch::kBFloat16);
      });
      EXPECT_EQ(fused[0].scalar_type(), torch::kBFloat16);
      for (size_t i = 0; i < fused.size(); ++i)
        EXPECT_LT(max_relative(fused[i].to(torch::kFloat), composed[i].to(torch::kFloat)), 1e-5)
            << kNames[i] << " p=" << p << " H=" << c.hidden;
    }
  }
  const Problem q = random_problem(torch::kFloat, {1, 5, 4, 20}, 1);
  EXPECT_THROW(lru_layer_bf16_gelu_dropout(q.in, torch::ones({1, 5, 19}, torch::kByte), 0.1), c10::Error);
  EXPECT_THROW(lru_layer_bf16_gelu_dropout(q.in, torch::Tensor(), 1.0), c10::Error);
}

// The front of a wide bf16 block (BatchNorm with batch statistics, the
// layer, skip, GELU, dropout) as one op against LibTorch's batch_norm followed
// by lru_layer_bf16_gelu_dropout, with x also used by the residual:
// y = float(g) + w .* x, so dL/dx has both paths. Measured: within 3.4e-7 of
// the largest entry; the bound leaves room for an element of bf16(u) that
// rounds the other way where the two statistics differ in the last bit.
TEST(LruLayerBf16, BlockFrontMatchesBatchNormThenTheGeluOp) {
  for (const double p : {0.0, 0.25}) {
    for (const Case& c : {Case{2, 37, 40, 24}, Case{3, 90, 21, 17}}) {  // N = 21: padded to 24
      Problem problem = random_problem(torch::kFloat, c, 15);
      problem.in.u = 3 * problem.in.u + torch::randn({c.hidden});  // per-channel offsets and scale
      const torch::Tensor w = torch::randn(problem.in.u.sizes());
      const torch::Tensor keep = torch::rand(problem.in.u.sizes()).ge(p).to(torch::kByte);
      const torch::Tensor mask = p > 0 ? keep : torch::Tensor();
      for (const bool residual : {true, false}) {  // without: x's second output unused, no gradient for it
        torch::Tensor mean, var;
        const auto fused = evaluate(problem, [&](const LruLayerInputs& in) {
          const LruBlockFront f = lru_block_bf16_front(in, mask, p, 1e-5);
          EXPECT_EQ(f.g.scalar_type(), torch::kBFloat16);
          EXPECT_FALSE(f.mean.requires_grad());
          mean = f.mean;
          var = f.var;
          return residual ? f.g.to(torch::kFloat) + w * f.x : f.g.to(torch::kFloat);
        });
        const auto composed = evaluate(problem, [&](const LruLayerInputs& in) {
          const int64_t h = in.u.size(2);
          const torch::Tensor z = torch::batch_norm(in.u.reshape({-1, h}), {}, {}, {}, {}, true, 0.1, 1e-5, false);
          LruLayerInputs normed = in;
          normed.u = z.view(in.u.sizes());
          const torch::Tensor g = lru_layer_bf16_gelu_dropout(normed, mask, p).to(torch::kFloat);
          return residual ? g + w * in.u : g;
        });
        const torch::Tensor rows = problem.in.u.reshape({-1, c.hidden});
        EXPECT_LT(max_relative(mean, rows.mean(0)), 1e-5);
        EXPECT_LT(max_relative(var, rows.var(0, false)), 1e-5);
        for (size_t i = 0; i < fused.size(); ++i)
          EXPECT_LT(max_relative(fused[i], composed[i]), 1e-4)
              << kNames[i] << " p=" << p << " H=" << c.hidden << (residual ? " with" : " without") << " residual";
      }
    }
  }
  const Problem q = random_problem(torch::kFloat, {1, 5, 4, 20}, 1);
  EXPECT_THROW(lru_block_bf16_front(q.in, torch::ones({1, 5, 19}, torch::kByte), 0.1, 1e-5), c10::Error);
  EXPECT_THROW(lru_block_bf16_front(q.in, torch::Tensor(), 1.0, 1e-5), c10::Error);
  EXPECT_THROW(lru_block_bf16_front(q.in, torch::Tensor(), 0.1, 0.0), c10::Error);
  const Problem one = random_problem(torch::kFloat, {1, 1, 4, 20}, 1);
  EXPECT_THROW(lru_block_bf16_front(one.in, torch::Tensor(), 0.1, 1e-5), c10::Error);
}

// lru_block_bf16_front_dropout on the CPU draws its mask with
// dropout_keep_mask when called (on CUDA its kernels draw the same bits:
// CudaFusedOps.DropoutDrawnInTheKernelsIsTheMaskKernels): the same generator
// state gives the same outputs and gradients as lru_block_bf16_front with
// that mask; a bad rate is an error.
TEST(LruLayerBf16, BlockFrontDropoutIsTheBlockFrontWithTheNextKeepMask) {
  const Case c{2, 37, 20, 24};
  const Problem problem = random_problem(torch::kFloat, c, 16);
  for (const double p : {0.0, 0.25}) {
    SCOPED_TRACE("p=" + std::to_string(p));
    const auto run = [&](bool drawn) {
      torch::manual_seed(12);
      return evaluate(problem, [&](const LruLayerInputs& in) {
        const LruBlockFront f = drawn ? lru_block_bf16_front_dropout(in, p, 1e-5)
                                      : lru_block_bf16_front(in, dropout_keep_mask(in.u.sizes(), p, torch::kCPU), p,
                                                             1e-5);
        return f.g.to(torch::kFloat) + 0.5 * f.x;
      });
    };
    const auto drawn = run(true), given = run(false);
    for (size_t i = 0; i < drawn.size(); ++i) EXPECT_TRUE(torch::equal(drawn[i], given[i])) << kNames[i];
  }
  EXPECT_THROW(lru_block_bf16_front_dropout(problem.in, 1.0, 1e-5), c10::Error);
  EXPECT_THROW(lru_block_bf16_front_dropout(problem.in, 0.1, 0.0), c10::Error);
}

TEST(LruLayerBf16, RejectsFloat64AndBadShapes) {
  const Problem p = random_problem(torch::kDouble, {1, 5, 4, 20}, 1);
  EXPECT_THROW(lru_layer_bf16(p.in), c10::Error);
  Problem q = random_problem(torch::kFloat, {1, 5, 4, 20}, 1);
  q.in.C_re = torch::randn({20, 5});
  EXPECT_THROW(lru_layer_bf16(q.in), c10::Error);
}

// The block front's running statistics: updated as BatchNorm1d updates them,
// and bad ones (shape, dtype, only one of the two, momentum) are errors that
// name the op, with the buffers left as they were.
TEST(LruLayerBf16, BlockFrontUpdatesOrRejectsTheRunningStatistics) {
  const Problem p = random_problem(torch::kFloat, {2, 6, 4, 20}, 3);  // B, L, N, H
  const torch::Tensor x = p.in.u;
  torch::Tensor mean = torch::randn({20}), var = torch::rand({20}) + 0.5;
  const torch::Tensor mean0 = mean.clone(), var0 = var.clone();
  const LruBlockFront f = lru_block_bf16_front(p.in, torch::Tensor(), 0.0, 1e-5, {mean, var, 0.25});
  const torch::Tensor flat = x.reshape({-1, 20});
  EXPECT_TRUE(torch::allclose(mean, 0.75 * mean0 + 0.25 * flat.mean(0), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(var, 0.75 * var0 + 0.25 * flat.var(0, /*unbiased=*/true), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(f.var, flat.var(0, /*unbiased=*/false), 1e-5, 1e-6));

  const torch::Tensor before = mean.clone();
  const auto expect_error = [&](const BatchNormRunning& r, const std::string& what) {
    try {
      lru_block_bf16_front(p.in, torch::Tensor(), 0.0, 1e-5, r);
      ADD_FAILURE() << what << ": no error";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("lru_block_bf16_front"), std::string::npos) << what << ": " << e.what();
    }
    EXPECT_TRUE(torch::equal(mean, before)) << what;
  };
  expect_error({mean, torch::rand({19}), 0.1}, "a {19} variance");
  expect_error({mean, torch::rand({20}, torch::kDouble), 0.1}, "a float64 variance");
  expect_error({mean, torch::Tensor(), 0.1}, "no variance");
  expect_error({mean, var, 1.5}, "momentum 1.5");
}

}  // namespace
}  // namespace compressm::nn
