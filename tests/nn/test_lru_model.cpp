// Block and model structure: shapes, residual path, parameter groups.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/lru_model.h"

namespace compressm::nn {
namespace {

LruModelOptions small_options() {
  LruModelOptions o;
  o.input_dim = 3;
  o.num_classes = 5;
  o.num_blocks = 2;
  o.state_dim = 12;
  o.hidden_dim = 6;
  return o;
}

TEST(LruModel, ShapesAndStateDims) {
  LruModel model(small_options());
  EXPECT_EQ(model->forward(torch::randn({4, 17, 3})).sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(model->state_dims(), (std::vector<int64_t>{12, 12}));
}

TEST(LruModel, TokenInputsUseAnEmbedding) {
  LruModelOptions o = small_options();
  o.vocab_size = 20;
  LruModel model(o);
  EXPECT_EQ(model->forward(torch::randint(0, 20, {2, 9}, torch::kLong)).sizes(),
            (std::vector<int64_t>{2, 5}));
}

TEST(LruModel, ParameterGroupsSplitTheSsmParameters) {
  LruModel model(small_options());
  const auto ssm = model->ssm_parameters();
  const auto other = model->other_parameters();
  EXPECT_EQ(ssm.size(), 2u * 5u);  // nu, theta, gamma, B_re, B_im per block
  EXPECT_EQ(ssm.size() + other.size(), model->parameters().size());
  EXPECT_TRUE(is_ssm_parameter("blocks.1.lru.B_im"));
  EXPECT_FALSE(is_ssm_parameter("blocks.1.lru.C_re"));
  EXPECT_FALSE(is_ssm_parameter("blocks.1.lru.D"));
  EXPECT_FALSE(is_ssm_parameter("blocks.1.lru.xB_im"));  // a whole leaf, not a suffix of one
}

TEST(LruModel, HasLeafMatchesTheLastDottedComponent) {
  EXPECT_TRUE(has_leaf("blocks.0.norm.running_var", "running_var"));
  EXPECT_FALSE(has_leaf("blocks.0.norm.xrunning_var", "running_var"));
  EXPECT_FALSE(has_leaf("running_var", "running_var"));  // no parent module
  EXPECT_FALSE(has_leaf("blocks.0.norm.running_mean", "running_var"));
}

TEST(LruModel, BlockIsResidual) {
  // With the GLU's value projection zeroed the block is the identity.
  torch::manual_seed(3);
  LruBlock block(8, 4, 0.0, LruInit{});
  {
    torch::NoGradGuard no_grad;
    block->glu_value->weight.zero_();
    block->glu_value->bias.zero_();
  }
  const torch::Tensor x = torch::randn({2, 10, 4});
  EXPECT_TRUE(torch::allclose(block->forward(x), x));
}

TEST(LruModel, GradientsReachEveryParameter) {
  LruModel model(small_options());
  model->forward(torch::randn({4, 17, 3})).pow(2).sum().backward();
  for (const auto& item : model->named_parameters())
    EXPECT_TRUE(item.value().grad().defined() && item.value().grad().abs().sum().item<float>() > 0)
        << item.key();
}

}  // namespace
}  // namespace compressm::nn
