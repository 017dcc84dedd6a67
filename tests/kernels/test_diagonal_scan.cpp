// The fused diagonal scan against the plain-loop autograd reference (values
// and gradients, complex128 and complex64) and against finite differences;
// the bfloat16-storage scan (kernels/diagonal_scan_bf16.h) against a float64
// scan of the same inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/diagonal_scan_bf16.h"
#include "nn/diagonal_scan_function.h"

namespace compressm::nn {
namespace {

struct Inputs {
  torch::Tensor lambda, u, upstream;
};

// |lambda| in [0.5, 0.999]: long memory, as in a trained LRU.
Inputs random_inputs(torch::ScalarType dtype, int64_t b, int64_t l, int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const auto real = dtype == torch::kComplexDouble ? torch::kDouble : torch::kFloat;
  const auto radius = 0.5 + 0.499 * torch::rand({n}, real);
  const auto phase = 6.283 * torch::rand({n}, real);
  Inputs in;
  in.lambda = torch::polar(radius, phase);
  in.u = torch::complex(torch::randn({b, l, n}, real), torch::randn({b, l, n}, real));
  in.upstream = torch::complex(torch::randn({b, l, n}, real), torch::randn({b, l, n}, real));
  return in;
}

// A real loss whose gradient w.r.t. x is `upstream`: sum(Re(conj(upstream) x)).
torch::Tensor loss_of(const torch::Tensor& x, const torch::Tensor& upstream) {
  return (torch::real(x) * torch::real(upstream) + torch::imag(x) * torch::imag(upstream)).sum();
}

double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

struct Gradients {
  torch::Tensor x, grad_lambda, grad_u;
};

template <class Scan>
Gradients run(const Inputs& in, Scan scan) {
  auto lambda = in.lambda.clone().requires_grad_(true);
  auto u = in.u.clone().requires_grad_(true);
  auto x = scan(lambda, u);
  loss_of(x, in.upstream).backward();
  return {x.detach(), lambda.grad(), u.grad()};
}

void expect_parity(torch::ScalarType dtype, double tolerance, int64_t n = 70) {
  const Inputs in = random_inputs(dtype, 3, 200, n, 1);
  const Gradients fast = run(in, diagonal_scan);
  const Gradients ref = run(in, diagonal_scan_reference);
  EXPECT_LT(max_relative(fast.x, ref.x), tolerance);
  EXPECT_LT(max_relative(fast.grad_u, ref.grad_u), tolerance);
  EXPECT_LT(max_relative(fast.grad_lambda, ref.grad_lambda), tolerance);
}

TEST(DiagonalScan, MatchesReferenceComplex128) { expect_parity(torch::kComplexDouble, 1e-10); }
TEST(DiagonalScan, MatchesReferenceComplex64) { expect_parity(torch::kComplexFloat, 1e-5); }
// N = 1100 spans three of the kernel's 512-state chunks, the last one partial.
TEST(DiagonalScan, MatchesReferenceAcrossStateChunks) {
  expect_parity(torch::kComplexDouble, 1e-10, 1100);
}

TEST(DiagonalScan, GradientsMatchFiniteDifferences) {
  const Inputs in = random_inputs(torch::kComplexDouble, 2, 40, 5, 2);
  const Gradients g = run(in, diagonal_scan);
  const double h = 1e-6;
  auto loss_at = [&](const torch::Tensor& lambda, const torch::Tensor& u) {
    return loss_of(diagonal_scan(lambda, u), in.upstream).item<double>();
  };
  // PyTorch's complex gradient of a real loss is dL/d(re) + i dL/d(im).
  for (int64_t i = 0; i < 5; ++i) {
    for (auto direction : {c10::complex<double>(1, 0), c10::complex<double>(0, 1)}) {
      auto plus = in.lambda.clone(), minus = in.lambda.clone();
      plus[i] += direction * h;
      minus[i] -= direction * h;
      const double fd = (loss_at(plus, in.u) - loss_at(minus, in.u)) / (2 * h);
      const auto grad = g.grad_lambda[i].item<c10::complex<double>>();
      const double analytic = direction.real() != 0 ? grad.real() : grad.imag();
      EXPECT_NEAR(fd, analytic, 1e-6 * std::max(1.0, std::abs(analytic))) << "lambda " << i;
    }
  }
  for (int64_t k : {0, 17, 39}) {
    auto plus = in.u.clone(), minus = in.u.clone();
    plus[1][k][3] += h;
    minus[1][k][3] -= h;
    const double fd = (loss_at(in.lambda, plus) - loss_at(in.lambda, minus)) / (2 * h);
    EXPECT_NEAR(fd, g.grad_u[1][k][3].item<c10::complex<double>>().real(), 1e-6) << "u step " << k;
  }
}

TEST(DiagonalScan, ResultDoesNotDependOnThreadCount) {
  const Inputs in = random_inputs(torch::kComplexDouble, 4, 64, 130, 3);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Gradients one = run(in, diagonal_scan);
  at::set_num_threads(2);
  const Gradients two = run(in, diagonal_scan);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.x, two.x));
  EXPECT_TRUE(torch::equal(one.grad_lambda, two.grad_lambda));
}

// Lazily conjugated inputs (conj views: the conj bit set, the data not
// conjugated) and a lazily conjugated incoming gradient give what their
// materialised copies give.
TEST(DiagonalScan, ConjugateViewsAreRead) {
  const Inputs in = random_inputs(torch::kComplexDouble, 2, 9, 5, 11);
  const torch::Tensor lambda = in.lambda.clone().requires_grad_(), u = in.u.clone().requires_grad_();
  const torch::Tensor x = diagonal_scan(lambda.conj(), u.conj());
  const torch::Tensor expected = diagonal_scan_reference(in.lambda.conj().resolve_conj(), in.u.conj().resolve_conj());
  EXPECT_LT((x - expected).abs().max().item<double>(), 1e-10);
  x.backward(in.upstream.conj());
  const torch::Tensor lambda_ref = in.lambda.clone().requires_grad_(), u_ref = in.u.clone().requires_grad_();
  diagonal_scan_reference(lambda_ref.conj(), u_ref.conj()).backward(in.upstream.conj().resolve_conj());
  EXPECT_LT((lambda.grad() - lambda_ref.grad()).abs().max().item<double>(), 1e-9);
  EXPECT_LT((u.grad() - u_ref.grad()).abs().max().item<double>(), 1e-9);
}

TEST(DiagonalScan, BadArgumentsAreRejected) {
  const auto u = torch::zeros({2, 3, 4}, torch::kComplexFloat);
  EXPECT_THROW(diagonal_scan(torch::zeros({5}, torch::kComplexFloat), u), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kComplexDouble), u), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kFloat), torch::zeros({2, 3, 4})), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kComplexFloat), torch::zeros({3, 4}, torch::kComplexFloat)),
               c10::Error);
}

// |a - b| <= relative |b| + absolute, elementwise.
void expect_within(const torch::Tensor& a, const torch::Tensor& b, double relative, double absolute, const char* what) {
  const torch::Tensor bad = (a - b).abs() > relative * b.abs() + absolute;
  EXPECT_EQ(bad.sum().item<int64_t>(), 0) << what << ": largest error " << (a - b).abs().max().item<double>();
}

uint16_t* bits(torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<c10::BFloat16>()); }

// bfloat16 inputs, a float32 state: x is the state rounded once (one
// bfloat16 rounding of the float64 state, at most 2^-9 relative, plus float32
// drift; allowed: 2^-7),
// the checkpoints are the states entering each chunk of 16 steps, grad_u is
// the float64 adjoint rounded once, dL/dlambda the float64 one.
TEST(DiagonalScanBf16, MatchesAFloat64ScanOfTheSameInputs) {
  struct Shape {
    int64_t b, l, n;
  };
  // Partial last chunks, a single step, one chunk exactly, N over the CPU
  // kernel's 512-state runs.
  for (const Shape c : {Shape{2, 37, 100}, Shape{1, 1, 5}, Shape{1, 16, 3}, Shape{2, 50, 600}}) {
    SCOPED_TRACE("B=" + std::to_string(c.b) + " L=" + std::to_string(c.l) + " N=" + std::to_string(c.n));
    const Inputs in = random_inputs(torch::kComplexDouble, c.b, c.l, c.n, 7);
    const torch::Tensor lambda = torch::view_as_real(in.lambda).to(torch::kFloat).contiguous();
    torch::Tensor u = torch::view_as_real(in.u).to(torch::kBFloat16).contiguous();
    torch::Tensor grad_x = torch::view_as_real(in.upstream).to(torch::kBFloat16).contiguous();
    const kernels::ScanShape shape{c.b, c.l, c.n};
    torch::Tensor x = torch::empty_like(u), grad_u = torch::empty_like(u);
    torch::Tensor checkpoints = torch::empty({c.b, kernels::bf16_scan_chunks(c.l), c.n, 2});
    torch::Tensor rows = torch::empty({c.b, c.n, 2});
    kernels::diagonal_scan_bf16_forward(lambda.data_ptr<float>(), bits(u), bits(x), checkpoints.data_ptr<float>(),
                                        shape);
    kernels::diagonal_scan_bf16_backward(lambda.data_ptr<float>(), bits(u), checkpoints.data_ptr<float>(),
                                         bits(grad_x), bits(grad_u), rows.data_ptr<float>(), shape);

    // The same inputs in float64: lambda as float32 holds it, u and grad_x as bfloat16 hold them.
    const Inputs exact{torch::view_as_complex(lambda.to(torch::kDouble)),
                       torch::view_as_complex(u.to(torch::kDouble)),
                       torch::view_as_complex(grad_x.to(torch::kDouble))};
    const Gradients ref = run(exact, diagonal_scan);
    const torch::Tensor ref_x = torch::view_as_real(ref.x);
    expect_within(x.to(torch::kDouble), ref_x, 1.0 / 128, 1e-4, "x");
    expect_within(grad_u.to(torch::kDouble), torch::view_as_real(ref.grad_u), 1.0 / 128, 1e-4, "grad_u");
    // Checkpoint c is the state after step 16 c - 1 (zero for the first chunk).
    EXPECT_EQ(checkpoints.select(1, 0).abs().max().item<double>(), 0.0);
    for (int64_t k = 1; k < checkpoints.size(1); ++k)
      expect_within(checkpoints.select(1, k).to(torch::kDouble), ref_x.select(1, 16 * k - 1), 1e-5, 1e-5,
                    "checkpoint");
    // Relative to the largest entry (exactly zero for L = 1).
    const torch::Tensor ref_grad_lambda = torch::view_as_real(ref.grad_lambda);
    expect_within(rows.sum(0).to(torch::kDouble), ref_grad_lambda, 0.0,
                  1e-5 * std::max(1.0, ref_grad_lambda.abs().max().item<double>()), "grad_lambda");
  }
}

}  // namespace
}  // namespace compressm::nn
