// The fused diagonal scan against the plain-loop autograd reference (values
// and gradients, complex128 and complex64) and against finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

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

TEST(DiagonalScan, BadArgumentsAreRejected) {
  const auto u = torch::zeros({2, 3, 4}, torch::kComplexFloat);
  EXPECT_THROW(diagonal_scan(torch::zeros({5}, torch::kComplexFloat), u), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kComplexDouble), u), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kFloat), torch::zeros({2, 3, 4})), c10::Error);
  EXPECT_THROW(diagonal_scan(torch::zeros({4}, torch::kComplexFloat), torch::zeros({3, 4}, torch::kComplexFloat)), c10::Error);
}

}  // namespace
}  // namespace compressm::nn
