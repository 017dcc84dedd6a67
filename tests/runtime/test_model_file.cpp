// Model files: the metadata, tensor set, shapes and values are validated
// against each other; every problem is one ModelFileError naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/model.h"
#include "runtime/random_model.h"

namespace compressm::testing {
namespace {

using runtime::ModelFileError;

void expect_rejected(const TensorFile& file, const std::string& what) {
  try {
    // Through the bytes, as a file on disk would go.
    runtime::model_weights(runtime::parse_safetensors(runtime::encode_safetensors(file), "m.safetensors"),
                           "m.safetensors");
    ADD_FAILURE() << "accepted; expected: " << what;
  } catch (const ModelFileError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("m.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
}

TEST(ModelFile, AcceptsAValidFileAndReadsItsArchitecture) {
  const Architecture a = small_architecture({12, 7});
  const runtime::ModelWeights w = runtime::model_weights(random_model_file(a, 1), "m");
  EXPECT_EQ(w.architecture.state_dims, (std::vector<int64_t>{12, 7}));
  EXPECT_EQ(w.architecture.hidden_dim, 6);
  EXPECT_EQ(w.architecture.input_dim, 3);
  EXPECT_EQ(w.architecture.num_classes, 5);
  EXPECT_DOUBLE_EQ(w.architecture.batchnorm_eps, 1e-5);
  ASSERT_EQ(w.blocks.size(), 2u);
  EXPECT_EQ(w.blocks[1].b.rows(), 2 * 7);  // Re Bt over Im Bt
  EXPECT_EQ(w.metadata.at("config_yaml"), "dataset: digits\n");
  // |lambda| < 1 for every state.
  for (const auto& b : w.blocks)
    EXPECT_LT((b.lambda_re.array().square() + b.lambda_im.array().square()).maxCoeff(), 1.0f);
}

TEST(ModelFile, RejectsNonFiniteWeights) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    TensorFile f = random_model_file(small_architecture(), 2);
    f.tensors.at("blocks.1.lru.C_im").values[5] = bad;
    expect_rejected(f, "tensor 'blocks.1.lru.C_im' has a non-finite value");
  }
  TensorFile f = random_model_file(small_architecture(), 2);
  f.tensors.at("blocks.0.lru.gamma_log").values[0] = 1000.0f;  // exp() overflows float
  expect_rejected(f, "gamma_log");
  f = random_model_file(small_architecture(), 2);
  f.tensors.at("blocks.0.norm.running_var").values[2] = -1.0f;
  expect_rejected(f, "negative variance");
}

TEST(ModelFile, RejectsMissingUnexpectedAndMisshapenTensors) {
  TensorFile f = random_model_file(small_architecture(), 3);
  f.tensors.erase("blocks.1.glu_gate.bias");
  expect_rejected(f, "no tensor 'blocks.1.glu_gate.bias'");
  f = random_model_file(small_architecture(), 3);
  f.tensors["blocks.2.lru.nu_log"] = f.tensors.at("blocks.1.lru.nu_log");
  expect_rejected(f, "unexpected tensor 'blocks.2.lru.nu_log'");
  // A reduced block whose metadata still says the old N.
  f = random_model_file(small_architecture({12, 7}), 3);
  f.metadata["state_dims"] = "[12, 8]";
  expect_rejected(f, "tensor 'blocks.1.lru.B_im' has shape [7, 6], expected [8, 6]");
}

TEST(ModelFile, RejectsBadOrHugeMetadata) {
  auto with = [](const std::string& key, const std::string& value) {
    TensorFile f = random_model_file(small_architecture(), 4);
    if (value == "<erase>") f.metadata.erase(key); else f.metadata[key] = value;
    return f;
  };
  expect_rejected(with("format", "gguf"), "format is 'gguf'");
  expect_rejected(with("format_version", "2"), "format_version");
  expect_rejected(with("hidden_dim", "<erase>"), "no 'hidden_dim'");
  expect_rejected(with("hidden_dim", "100000000"), "hidden_dim is '100000000'");
  expect_rejected(with("hidden_dim", "-6"), "hidden_dim");
  expect_rejected(with("hidden_dim", "6.0"), "hidden_dim");
  expect_rejected(with("num_classes", "0"), "num_classes");
  expect_rejected(with("state_dims", "[12, 100000000000]"), "state_dims entry 100000000000");
  expect_rejected(with("state_dims", "[12, 0]"), "state_dims entry 0");
  expect_rejected(with("state_dims", "[]"), "state_dims is not");
  expect_rejected(with("state_dims", "{broken"), "state_dims is not");
  expect_rejected(with("state_dims", std::string(100000, '[')), "state_dims is too long");
  expect_rejected(with("batchnorm_eps", "nan"), "batchnorm_eps");
  expect_rejected(with("batchnorm_eps", "0"), "batchnorm_eps");
  expect_rejected(with("vocab_size", "30"), "input_dim 1");  // tokens with 3 channels
}

TEST(ModelFile, LoadReadsFromDisk) {
  EXPECT_THROW(runtime::Model::load("/nonexistent/model.safetensors"), ModelFileError);
}

}  // namespace
}  // namespace compressm::testing
