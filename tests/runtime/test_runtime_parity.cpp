// The runtime against LibTorch's eval-mode forward of the same model, exported
// through the model file: full (N=256, the sMNIST shape), compressed by the
// linalg core's balanced truncation (N=47; two blocks 47 / 13), and a token
// model. Tolerance 1e-5 relative to the largest logit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "export/model_export.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "nn/lru_model.h"
#include "runtime/model.h"
#include "runtime/stream.h"

namespace compressm::testing {
namespace {

nn::LruModel make_model(int64_t input_dim, int64_t blocks, int64_t n, int64_t h, int64_t vocab = 0) {
  torch::manual_seed(7);
  nn::LruModelOptions o;
  o.input_dim = input_dim;
  o.vocab_size = vocab;
  o.num_classes = 10;
  o.num_blocks = blocks;
  o.state_dim = n;
  o.hidden_dim = h;
  nn::LruModel model(o);
  // BatchNorm statistics away from (0, 1), so the normalisation is tested.
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().copy_(0.3 * torch::randn({h}));
    if (item.key().find("running_var") != std::string::npos) item.value().copy_(0.5 + torch::rand({h}));
  }
  model->eval();
  return model;
}

// Balanced truncation of each block to `ranks` states (the linalg core, as
// `compressm compress` and the trainer do it).
void reduce(nn::LruModel& model, const std::vector<Eigen::Index>& ranks) {
  auto layers = model->lru_layers();
  for (size_t b = 0; b < layers.size(); ++b) {
    const linalg::LruReduction r =
        linalg::reduce_diagonal_system(layers[b]->to_system(), linalg::RankRule::fixed(ranks[b]));
    layers[b]->load_parameters(linalg::system_to_lru(r.reduced, nullptr));
  }
}

runtime::Model exported(const nn::LruModel& model) {
  const std::string bytes =
      exporting::encode_model_file(exporting::model_tensor_file(model, "dataset: smnist\n", "smnist", 0), "m");
  return runtime::Model(runtime::model_weights(runtime::parse_safetensors(bytes, "m"), "m"));
}

// Runtime logits (whole-sequence and streamed) against model->forward(x), x {B, L, C}.
void expect_parity(const nn::LruModel& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = const_cast<nn::LruModel&>(model)->forward(x).contiguous();  // {B, classes}
  const runtime::Model runtime_model = exported(model);
  const torch::Tensor input = x.to(torch::kFloat).contiguous();
  const int64_t batch = x.size(0), length = x.size(1), step = input.numel() / (batch * length);
  const float scale = expected.abs().max().item<float>();
  double worst = 0;
  for (int64_t s = 0; s < batch; ++s) {
    const float* u = input.data_ptr<float>() + s * length * step;
    const runtime::VectorF logits = runtime_model.classify(u, length);
    runtime::Stream stream(runtime_model);
    for (int64_t t = 0; t < length; ++t) stream.step(u + t * step);
    for (int64_t k = 0; k < expected.size(1); ++k) {
      EXPECT_NEAR(logits[k], expected[s][k].item<float>(), 1e-5 * scale) << "sequence " << s << " class " << k;
      EXPECT_NEAR(stream.logits()[k], expected[s][k].item<float>(), 1e-5 * scale) << "streamed " << s;
      worst = std::max({worst, std::abs(logits[k] - expected[s][k].item<double>()) / scale,
                        std::abs(stream.logits()[k] - expected[s][k].item<double>()) / scale});
    }
  }
  std::printf("max relative error vs LibTorch: %.2e\n", worst);
}

TEST(RuntimeParity, FullSmnistModel) {
  nn::LruModel model = make_model(1, 1, 256, 8);
  expect_parity(model, torch::rand({3, 784, 1}));
}

TEST(RuntimeParity, CompressedModel) {
  nn::LruModel model = make_model(1, 1, 256, 8);
  reduce(model, {47});
  ASSERT_EQ(model->state_dims(), (std::vector<int64_t>{47}));
  expect_parity(model, torch::rand({3, 784, 1}));
}

TEST(RuntimeParity, BlocksOfDifferentSizes) {
  nn::LruModel model = make_model(3, 2, 64, 16);
  reduce(model, {47, 13});
  ASSERT_EQ(model->state_dims(), (std::vector<int64_t>{47, 13}));
  expect_parity(model, torch::randn({4, 300, 3}));
}

TEST(RuntimeParity, TokenModel) {
  nn::LruModel model = make_model(1, 2, 32, 8, /*vocab=*/20);
  const torch::Tensor tokens = torch::randint(0, 20, {3, 150}, torch::kLong);
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(tokens);
  const runtime::Model runtime_model = exported(model);
  const torch::Tensor ids = tokens.to(torch::kFloat).contiguous();  // the runtime's token ids are floats
  for (int64_t s = 0; s < 3; ++s) {
    const runtime::VectorF logits = runtime_model.classify(ids.data_ptr<float>() + s * 150, 150);
    const float scale = expected[s].abs().max().item<float>();
    for (int64_t k = 0; k < 10; ++k) EXPECT_NEAR(logits[k], expected[s][k].item<float>(), 1e-5 * scale);
  }
}

TEST(RuntimeParity, ExportedTensorsKeepTheParameterNames) {
  nn::LruModel model = make_model(1, 1, 16, 8);
  const runtime::TensorFile file = exporting::model_tensor_file(model, "x: 1\n", "digits", 3);
  for (const char* name : {"encoder.weight", "blocks.0.norm.running_var", "blocks.0.lru.nu_log", "blocks.0.lru.B_re",
                           "blocks.0.lru.D", "blocks.0.glu_gate.bias", "head.weight"})
    EXPECT_TRUE(file.tensors.count(name)) << name;
  EXPECT_FALSE(file.tensors.count("blocks.0.norm.num_batches_tracked"));
  EXPECT_EQ(file.metadata.at("state_dims"), "[16]");
  EXPECT_EQ(file.metadata.at("config_yaml"), "x: 1\n");
  EXPECT_EQ(file.metadata.at("seed"), "3");
  // A diverged model is refused at export time, naming the source.
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["head.bias"][0] = std::nanf("");
  }
  EXPECT_THROW(exporting::encode_model_file(exporting::model_tensor_file(model, "", "digits", 0), "ckpt"),
               runtime::ModelFileError);
}

}  // namespace
}  // namespace compressm::testing
