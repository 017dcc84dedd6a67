// The LRU layer against the recurrence written out in double precision, and
// the round trip through the control-theory core's parameter map.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "linalg/lru_parameters.h"
#include "nn/lru_layer.h"

namespace compressm::nn {
namespace {

// y_k = Re(C x_k) + D u_k, x_k = lambda x_{k-1} + Bt u_k, from the system form.
torch::Tensor naive_forward(const linalg::DiagonalSystem& s, const torch::Tensor& u) {
  const torch::Tensor ud = u.to(torch::kDouble);
  const int64_t batch = u.size(0), length = u.size(1), h = u.size(2), n = s.lambda.size();
  torch::Tensor y = torch::zeros({batch, length, h}, torch::kDouble);
  for (int64_t b = 0; b < batch; ++b) {
    linalg::VectorXc x = linalg::VectorXc::Zero(n);
    for (int64_t k = 0; k < length; ++k) {
      Eigen::VectorXd uk(h);
      for (int64_t j = 0; j < h; ++j) uk[j] = ud[b][k][j].item<double>();
      x = s.lambda.cwiseProduct(x) + s.B * uk.cast<linalg::Complex>();
      const Eigen::VectorXd yk = (s.C * x).real() + s.D.cwiseProduct(uk);
      for (int64_t j = 0; j < h; ++j) y[b][k][j] = yk[j];
    }
  }
  return y;
}

TEST(LruLayer, ParametersAreNamedAsTheReference) {
  LruLayer layer(6, 3);
  std::vector<std::string> names;
  for (const auto& item : layer->named_parameters()) names.push_back(item.key());
  EXPECT_EQ(names, (std::vector<std::string>{"nu_log", "theta_log", "gamma_log", "B_re", "B_im",
                                             "C_re", "C_im", "D"}));
}

TEST(LruLayer, InitialisationFollowsTheDesign) {
  torch::manual_seed(0);
  LruLayer layer(2000, 4, LruInit{0.9, 0.999, 6.28});
  const torch::Tensor radius = torch::exp(-torch::exp(layer->nu_log));
  EXPECT_GE(radius.min().item<float>(), 0.9f - 1e-6f);
  EXPECT_LE(radius.max().item<float>(), 0.999f + 1e-6f);
  const torch::Tensor gamma_sq = torch::exp(2 * layer->gamma_log);
  EXPECT_LT((gamma_sq - (1 - radius * radius)).abs().max().item<float>(), 1e-5f);
  EXPECT_NEAR(layer->B_re.std().item<float>(), 1.0 / std::sqrt(8.0), 0.01);
  EXPECT_NEAR(layer->C_re.std().item<float>(), 1.0 / std::sqrt(2000.0), 0.001);
}

TEST(LruLayer, ForwardMatchesTheRecurrence) {
  torch::manual_seed(1);
  LruLayer layer(10, 3);
  const torch::Tensor u = torch::randn({2, 30, 3});
  const torch::Tensor y = layer->forward(u).to(torch::kDouble);
  const torch::Tensor expected = naive_forward(layer->to_system(), u);
  EXPECT_LT(((y - expected).abs().max() / expected.abs().max()).item<double>(), 1e-5);
}

TEST(LruLayer, LoadParametersRoundTripsAndResizes) {
  torch::manual_seed(2);
  LruLayer layer(8, 3);
  const torch::Tensor u = torch::randn({2, 20, 3});
  const torch::Tensor before = layer->forward(u).detach();
  layer->load_parameters(linalg::system_to_lru(layer->to_system(), nullptr));
  EXPECT_LT((layer->forward(u).detach() - before).abs().max().item<float>(), 1e-5f);

  linalg::DiagonalSystem small = layer->to_system();
  small.lambda.conservativeResize(5);
  small.B.conservativeResize(5, Eigen::NoChange);
  small.C.conservativeResize(Eigen::NoChange, 5);
  layer->load_parameters(linalg::system_to_lru(small, nullptr));
  EXPECT_EQ(layer->state_dim(), 5);
  EXPECT_EQ(layer->named_parameters()["B_re"].size(0), 5);
  const torch::Tensor y = layer->forward(u);
  EXPECT_LT(((y.to(torch::kDouble) - naive_forward(small, u)).abs().max()).item<double>(), 1e-4);
  y.sum().backward();
  EXPECT_TRUE(layer->nu_log.grad().defined());
}

}  // namespace
}  // namespace compressm::nn
