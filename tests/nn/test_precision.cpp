// Dense-layer precision (src/nn/precision.h): bf16 computes the dense layers
// from bfloat16-rounded operands and returns float32, gradients reach the
// float32 parameters; tf32 on the CPU is fp32 exactly; the LRU state stays
// float32 in every mode, and layers wider than 16 channels take their B and C
// projections in bfloat16 in the bf16 mode.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/lru_model.h"
#include "nn/precision.h"

namespace compressm::nn {
namespace {

double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

TEST(Precision, Names) {
  EXPECT_EQ(to_string(Precision::kFp32), "fp32");
  EXPECT_EQ(to_string(Precision::kTf32), "tf32");
  EXPECT_EQ(to_string(Precision::kBf16), "bf16");
}

TEST(Precision, Bf16DenseIsTheProductOfRoundedOperands) {
  torch::manual_seed(1);
  torch::nn::Linear layer(48, 24);
  const torch::Tensor x = torch::randn({7, 48});
  const torch::Tensor y = dense(layer, x, Precision::kBf16);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  // The reference: the same rounded operands, multiplied in float64.
  const auto rounded = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kDouble); };
  const torch::Tensor expected = torch::matmul(rounded(x), rounded(layer->weight).t()) + rounded(layer->bias);
  const torch::Tensor exact = torch::matmul(x.to(torch::kDouble), layer->weight.to(torch::kDouble).t()) +
                              layer->bias.to(torch::kDouble);
  // Within bfloat16 rounding of the result of the rounded product ...
  EXPECT_LT(max_relative(y.to(torch::kDouble), expected), 1e-2);
  // ... and really rounded: fp32 would be far closer to the exact product.
  EXPECT_GT(max_relative(y.to(torch::kDouble), exact), 1e-4);
  EXPECT_LT(max_relative(dense(layer, x, Precision::kFp32).to(torch::kDouble), exact), 1e-5);
}

LruModelOptions small_model(Precision precision, int64_t hidden = 8) {
  LruModelOptions o;
  o.input_dim = 2;
  o.num_classes = 4;
  o.num_blocks = 2;
  o.state_dim = 16;
  o.hidden_dim = hidden;
  o.precision = precision;
  return o;
}

TEST(Precision, Bf16ModelTrainsFloat32Parameters) {
  torch::manual_seed(5);
  LruModel fp32(small_model(Precision::kFp32));
  torch::manual_seed(5);
  LruModel bf16(small_model(Precision::kBf16));
  const torch::Tensor x = torch::rand({3, 20, 2});
  const torch::Tensor labels = torch::randint(0, 4, {3}, torch::kLong);
  const torch::Tensor logits32 = fp32->forward(x), logits16 = bf16->forward(x);
  EXPECT_EQ(logits16.scalar_type(), torch::kFloat);
  EXPECT_LT(max_relative(logits16, logits32), 5e-2);
  EXPECT_GT((logits16 - logits32).abs().max().item<double>(), 0.0);  // bf16 really used
  torch::nn::functional::cross_entropy(logits16, labels).backward();
  for (const auto& item : bf16->named_parameters()) {
    EXPECT_EQ(item.value().scalar_type(), torch::kFloat) << item.key();
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_EQ(item.value().grad().scalar_type(), torch::kFloat) << item.key();
    EXPECT_TRUE(torch::isfinite(item.value().grad()).all().item<bool>()) << item.key();
  }
}

// A bf16 model encodes a few input channels in float32 (a GEMM with K = 2
// is a pass over its output), and many in bfloat16 like the other layers.
TEST(Precision, Bf16ModelEncodesFewInputChannelsInFloat32) {
  torch::manual_seed(6);
  for (const int64_t inputs : {int64_t{2}, LruModelImpl::kFloat32EncoderInputs + 1}) {
    LruModelOptions o = small_model(Precision::kBf16);
    o.input_dim = inputs;
    LruModel model(o);
    const torch::Tensor x = torch::rand({3, 20, inputs});
    const auto params = model->named_parameters();
    const torch::Tensor &w = params["encoder.weight"], &b = params["encoder.bias"];
    const torch::Tensor h = model->encode(x);
    EXPECT_EQ(h.scalar_type(), torch::kFloat) << inputs;
    const torch::Tensor fp32 = torch::nn::functional::linear(x, w, b);
    if (inputs <= LruModelImpl::kFloat32EncoderInputs) {
      EXPECT_TRUE(torch::equal(h, fp32)) << inputs;
    } else {
      const torch::Tensor rounded = torch::nn::functional::linear(x.to(torch::kBFloat16), w.to(torch::kBFloat16),
                                                                  b.to(torch::kBFloat16))
                                        .to(torch::kFloat);
      EXPECT_TRUE(torch::equal(h, rounded)) << inputs;
      EXPECT_FALSE(torch::equal(h, fp32)) << inputs;
    }
  }
}

TEST(Precision, Tf32IsFp32OnTheCpu) {
  torch::manual_seed(9);
  LruModel fp32(small_model(Precision::kFp32));
  torch::manual_seed(9);
  LruModel tf32(small_model(Precision::kTf32));
  const torch::Tensor x = torch::rand({3, 20, 2});
  EXPECT_TRUE(torch::equal(fp32->forward(x), tf32->forward(x)));
  enable_tf32(false);  // the flag is process-wide: leave it as found
}

// wide_lru_bf16 (default true) switches the LRU projections of a wide
// model's blocks to bfloat16; a narrow model is the same either way.
TEST(Precision, Bf16WideModelsRoundTheirLruProjections) {
  const torch::Tensor x = torch::rand({3, 20, 2});
  for (const int64_t hidden : {8, 24}) {
    LruModelOptions o = small_model(Precision::kBf16, hidden);
    torch::manual_seed(5);
    LruModel rounded(o);
    o.wide_lru_bf16 = false;
    torch::manual_seed(5);
    LruModel float32(o);
    const torch::Tensor a = rounded->forward(x), b = float32->forward(x);
    if (hidden == 8) {
      EXPECT_TRUE(torch::equal(a, b));
    } else {
      EXPECT_GT((a - b).abs().max().item<double>(), 0.0);
      EXPECT_LT(max_relative(a, b), 5e-2);
    }
  }
  enable_tf32(false);
}

TEST(Precision, Bf16WideModelTrains) {
  torch::manual_seed(6);
  LruModel model(small_model(Precision::kBf16, 24));
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(3e-3));
  const torch::Tensor x = torch::rand({16, 30, 2});
  const torch::Tensor labels = (x.select(2, 0).mean(1) > 0.5).to(torch::kLong);  // learnable from the input
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    const torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
  for (const auto& item : model->named_parameters()) EXPECT_EQ(item.value().scalar_type(), torch::kFloat);
  enable_tf32(false);
}

}  // namespace
}  // namespace compressm::nn
