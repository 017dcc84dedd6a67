// `compressm export` and `compressm classify` as a user runs them, on a small
// digits model trained here: classify's accuracy equals eval's, an independent
// Python reader (json + struct + numpy) reads the file and computes the same
// logits, and damaged model or input files exit 2 with one line naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.h"
#include "data/dataset.h"
#include "support/temp_dir.h"

namespace compressm::testing {
namespace {
namespace fs = std::filesystem;

bool digits_available() {
  const std::string dir = data::default_data_dir("digits");
  return fs::exists(dir + "/digits.csv.gz") || fs::exists(dir + "/digits.csv");
}

bool is_one_error_line(const std::string& err) {
  return err.rfind("compressm: error: ", 0) == 0 && err.find('\n') == err.size() - 1;
}

// One trained run and its export, shared by the tests (training takes seconds).
class ExportClassifyCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!digits_available()) return;
    dir_ = new TempDir();
    const std::string config = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";
    train_ = new CliResult(run_cli({"train", "--config", config, "--out", run().string(), "--set",
                                    "training.num_steps=300", "--set", "checkpoint_every=0"}));
    if (train_->status == 0) export_ = new CliResult(run_cli({"export", "--checkpoint", run().string(), "--out",
                                                              model().string()}));
  }
  static void TearDownTestSuite() {
    delete train_;
    delete export_;
    delete dir_;
  }
  void SetUp() override {
    if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
    ASSERT_EQ(train_->status, 0) << train_->err;
    ASSERT_EQ(export_->status, 0) << export_->err;
  }
  static fs::path run() { return dir_->path() / "run"; }
  static fs::path model() { return dir_->path() / "model.safetensors"; }
  // A copy of the model file with `edit` applied to its bytes.
  static fs::path damaged(const std::string& name, const std::function<void(std::string&)>& edit) {
    std::string bytes = read_text(model());
    edit(bytes);
    return dir_->write(name, bytes);
  }
  // Expects classify on `file` to exit 2 with one stderr line naming it and `what`.
  static void expect_bad_model(const fs::path& file, const std::string& what) {
    const CliResult r = run_cli({"classify", "--model", file.string(), "--dataset", "digits", "--json"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(file.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  static TempDir* dir_;
  static CliResult *train_, *export_;
};
TempDir* ExportClassifyCli::dir_ = nullptr;
CliResult* ExportClassifyCli::train_ = nullptr;
CliResult* ExportClassifyCli::export_ = nullptr;

TEST_F(ExportClassifyCli, ClassifyAccuracyEqualsEval) {
  const CliResult eval = run_cli({"eval", "--checkpoint", run().string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  const nlohmann::json expected = nlohmann::json::parse(eval.out);
  for (const char* threads : {"1", "2"}) {
    const CliResult c =
        run_cli({"classify", "--model", model().string(), "--dataset", "digits", "--threads", threads, "--json"});
    ASSERT_EQ(c.status, 0) << c.err;
    const nlohmann::json got = nlohmann::json::parse(c.out);  // exactly one document
    EXPECT_EQ(got.size(), 3u);
    EXPECT_EQ(got["n"], expected["n"]);
    EXPECT_EQ(got["n"].get<int>(), 360);
    EXPECT_EQ(got["accuracy"].get<double>(), expected["accuracy"].get<double>()) << "threads " << threads;
    // float32 logits from Eigen and from LibTorch: the same loss to rounding.
    EXPECT_NEAR(got["loss"].get<double>(), expected["loss"].get<double>(), 1e-5 * expected["loss"].get<double>());
  }
  EXPECT_GT(expected["accuracy"].get<double>(), 0.5);  // a trained model, not chance
  const CliResult text = run_cli({"classify", "--model", model().string(), "--dataset", "digits"});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("test accuracy"), std::string::npos) << text.out;
}

TEST_F(ExportClassifyCli, ACompressedCheckpointExportsAtItsReducedSize) {
  // Post-training balanced truncation, then export: the file carries the
  // reduced N, and classify still equals eval of the reduced checkpoint.
  const fs::path compressed = dir_->path() / "compressed";
  const CliResult c = run_cli({"compress", "--checkpoint", run().string(), "--tol", "0.9", "--out",
                               compressed.string()});
  ASSERT_EQ(c.status, 0) << c.err;
  const fs::path file = dir_->path() / "compressed.safetensors";
  const CliResult e = run_cli({"export", "--checkpoint", compressed.string(), "--out", file.string()});
  ASSERT_EQ(e.status, 0) << e.err;
  const std::string bytes = read_text(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  const auto dims = nlohmann::json::parse(header["__metadata__"]["state_dims"].get<std::string>());
  ASSERT_EQ(dims.size(), 1u);
  EXPECT_LT(dims[0].get<int>(), 64);
  EXPECT_EQ(header["blocks.0.lru.B_re"]["shape"][0], dims[0]);

  const CliResult eval = run_cli({"eval", "--checkpoint", compressed.string(), "--json"});
  ASSERT_EQ(eval.status, 0) << eval.err;
  const CliResult classify = run_cli({"classify", "--model", file.string(), "--dataset", "digits", "--json"});
  ASSERT_EQ(classify.status, 0) << classify.err;
  const nlohmann::json c_doc = nlohmann::json::parse(classify.out), e_doc = nlohmann::json::parse(eval.out);
  EXPECT_EQ(c_doc["accuracy"], e_doc["accuracy"]);
  EXPECT_EQ(c_doc["n"], e_doc["n"]);
  EXPECT_NEAR(c_doc["loss"].get<double>(), e_doc["loss"].get<double>(), 1e-5 * e_doc["loss"].get<double>());
}

TEST_F(ExportClassifyCli, ClassifiesOneSequenceFromATextFile) {
  const data::Splits splits = data::load_dataset("digits", "", 0);
  std::string csv = "# digits test example 0, pixels / 16\n";
  for (int64_t t = 0; t < splits.test.seq_len; ++t) csv += std::to_string(splits.test.inputs[t]) + "\n";
  const fs::path input = dir_->write("example.csv", csv);
  const CliResult r = run_cli({"classify", "--model", model().string(), "--input", input.string(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["probabilities"].size(), 10u);
  double total = 0, best = -1;
  int best_class = -1;
  for (int k = 0; k < 10; ++k) {
    const double p = doc["probabilities"][k].get<double>();
    total += p;
    if (p > best) best = p, best_class = k;
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  EXPECT_EQ(doc["class"].get<int>(), best_class);
  EXPECT_EQ(doc["length"].get<int>(), 64);
  const CliResult text = run_cli({"classify", "--model", model().string(), "--input", input.string()});
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_EQ(text.out.rfind("class " + std::to_string(best_class), 0), 0u) << text.out;
  EXPECT_EQ(text.err, "");
  // A sequence of another length than the model was trained on still runs (an LRU takes any length), with a warning.
  const fs::path shorter = dir_->write("short.csv", "0.1\n0.2\n0.3\n");
  const CliResult warned = run_cli({"classify", "--model", model().string(), "--input", shorter.string()});
  ASSERT_EQ(warned.status, 0) << warned.err;
  EXPECT_NE(warned.err.find(shorter.string() + " has 3 steps; " + model().string() +
                            " was trained on digits sequences of 64"),
            std::string::npos) << warned.err;
}

// The runtime computes in float32: a model trained with bf16 dense layers is
// classified with a warning that its accuracy can differ slightly from eval's.
TEST_F(ExportClassifyCli, AModelTrainedInBf16IsClassifiedWithAWarning) {
  const std::string config = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";
  const fs::path run16 = dir_->path() / "run_bf16", model16 = dir_->path() / "bf16.safetensors";
  const CliResult train = run_cli({"train", "--config", config, "--out", run16.string(), "--set",
                                   "training.num_steps=20", "--set", "training.eval_steps=20", "--set",
                                   "checkpoint_every=0", "--set", "training.precision=bf16"});
  ASSERT_EQ(train.status, 0) << train.err;
  ASSERT_EQ(run_cli({"export", "--checkpoint", run16.string(), "--out", model16.string()}).status, 0);
  const CliResult r = run_cli({"classify", "--model", model16.string(), "--dataset", "digits", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find(model16.string() + " was trained with precision bf16; this runtime computes in float32"),
            std::string::npos) << r.err;
  const CliResult fp32 = run_cli({"classify", "--model", model().string(), "--dataset", "digits", "--json"});
  ASSERT_EQ(fp32.status, 0) << fp32.err;
  EXPECT_EQ(fp32.err.find("precision"), std::string::npos) << fp32.err;
}

TEST_F(ExportClassifyCli, AnIndependentPythonReaderComputesTheSameLogits) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3 numpy";
  std::string csv;
  for (int t = 0; t < 64; ++t) csv += std::to_string((t * 37 % 17) / 16.0) + "\n";
  const fs::path input = dir_->write("pattern.csv", csv);
  const fs::path out = dir_->path() / "python.json";
  const std::string script = std::string(COMPRESSM_SOURCE_DIR) + "/tests/runtime/read_safetensors.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + shell_quote(script) + " " + shell_quote(model().string()) + " " +
                         shell_quote(input.string()) + " > " + shell_quote(out.string()))
                            .c_str()),
            0);
  const nlohmann::json python = nlohmann::json::parse(read_text(out));
  for (const char* name : {"encoder.weight", "blocks.0.norm.running_mean", "blocks.0.lru.nu_log",
                           "blocks.0.lru.B_re", "blocks.0.lru.C_im", "blocks.0.glu_gate.weight", "head.bias"})
    EXPECT_NE(std::find(python["names"].begin(), python["names"].end(), name), python["names"].end()) << name;
  EXPECT_EQ(python["metadata"]["state_dims"], "[64]");
  EXPECT_EQ(python["metadata"]["dataset"], "digits");
  EXPECT_NE(python["metadata"]["config_yaml"].get<std::string>().find("dataset: digits"), std::string::npos);

  const CliResult r = run_cli({"classify", "--model", model().string(), "--input", input.string(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json ours = nlohmann::json::parse(r.out)["logits"];
  double scale = 0;
  for (const auto& v : python["logits"]) scale = std::max(scale, std::abs(v.get<double>()));
  ASSERT_EQ(ours.size(), python["logits"].size());
  for (size_t k = 0; k < ours.size(); ++k)
    EXPECT_NEAR(ours[k].get<double>(), python["logits"][k].get<double>(), 1e-5 * scale) << k;
}

TEST_F(ExportClassifyCli, BadModelFilesExitTwoWithOneLine) {
  expect_bad_model(dir_->path() / "missing.safetensors", "no such file");
  expect_bad_model(dir_->path(), "a folder, not a model file");
  expect_bad_model("/dev/null", "not a regular file (a pipe or a device?)");  // was "no such file"
  expect_bad_model(damaged("truncated.safetensors", [](std::string& b) { b.resize(b.size() / 2); }), "");
  expect_bad_model(damaged("short.safetensors", [](std::string& b) { b.resize(5); }), "too short");
  expect_bad_model(damaged("long_header.safetensors", [](std::string& b) { b[5] = 0x7f; }), "larger than the file");
  expect_bad_model(damaged("json.safetensors", [](std::string& b) { b[8] = '['; }), "header is not a JSON object");
  expect_bad_model(dir_->write("text.safetensors", "this is not a model file at all"), "larger than the file");
  // NaN in head.bias: its offsets from the header.
  expect_bad_model(damaged("nan.safetensors",
                           [](std::string& b) {
                             uint64_t n = 0;
                             std::memcpy(&n, b.data(), 8);
                             const auto header = nlohmann::json::parse(b.substr(8, n));
                             const uint64_t at = 8 + n + header["head.bias"]["data_offsets"][0].get<uint64_t>();
                             const float nan = std::nanf("");
                             std::memcpy(&b[at], &nan, 4);
                           }),
                   "tensor 'head.bias' has a non-finite value");
}

TEST_F(ExportClassifyCli, BadInputsAndUsageExitTwo) {
  const fs::path two_columns = dir_->write("two.csv", "0.1, 0.2\n0.3, 0.4\n");
  CliResult r = run_cli({"classify", "--model", model().string(), "--input", two_columns.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(two_columns.string() + ":1: has 2 values, the model takes 1"), std::string::npos) << r.err;
  const fs::path words = dir_->write("words.csv", "0.5\nhello\n");
  r = run_cli({"classify", "--model", model().string(), "--input", words.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(words.string() + ":2: 'hello' is not a number"), std::string::npos) << r.err;
  r = run_cli({"classify", "--model", model().string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  // Finite values that overflow float32 in the forward pass: an error, not a class from NaN logits.
  std::string huge_values;
  for (int t = 0; t < 64; ++t) huge_values += "3.4e38\n";
  const fs::path huge = dir_->write("huge.csv", huge_values);
  r = run_cli({"classify", "--model", model().string(), "--input", huge.string(), "--json"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(huge.string() + ": the model's output is not finite"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  r = run_cli({"classify", "--model", model().string(), "--dataset", "digits", "--input", words.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  // Another dataset than the model's says so (then fails here: no such folder).
  r = run_cli({"classify", "--model", model().string(), "--dataset", "smnist", "--data-dir",
               (dir_->path() / "none").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("compressm: warning: " + model().string() + " was trained on digits; scoring it on smnist"),
            std::string::npos)
      << r.err;
  // --threads applies to --dataset only: with --input it is a usage error, not ignored.
  r = run_cli({"classify", "--model", model().string(), "--input", words.string(), "--threads", "2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("--threads"), std::string::npos) << r.err;
  r = run_cli({"export", "--checkpoint", (dir_->path() / "nowhere").string(), "--out",
               (dir_->path() / "x.safetensors").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_FALSE(fs::exists(dir_->path() / "x.safetensors"));

  // An existing --out that is not a model file (here the run's own config.yaml)
  // is refused and left as it was; an earlier export is replaced.
  const std::string config_before = read_text(run() / "config.yaml");
  r = run_cli({"export", "--checkpoint", run().string(), "--out", (run() / "config.yaml").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("exists and is not a safetensors model file; refusing to replace it"), std::string::npos)
      << r.err;
  EXPECT_EQ(read_text(run() / "config.yaml"), config_before);
  EXPECT_EQ(run_cli({"export", "--checkpoint", run().string(), "--out", model().string()}).status, 0);
  // A JSON file whose ninth byte is '{' (what the check once looked at) is not a model either.
  const fs::path results = dir_->write("results.json", R"({"runs":{"important":[1,2,3]}})");
  r = run_cli({"export", "--checkpoint", run().string(), "--out", results.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("exists and is not a safetensors model file"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(results), R"({"runs":{"important":[1,2,3]}})");

  // --out inside the checkpoint folder it reads (or any other) is refused:
  // the checkpoint is left as it was and still loads.
  const std::string before = read_text(run() / "final/model.bin");
  for (const char* inside : {"final/model.bin", "final/model.safetensors", "final/sub/m.safetensors"}) {
    r = run_cli({"export", "--checkpoint", run().string(), "--out", (run() / inside).string()});
    EXPECT_EQ(r.status, 2) << inside;
    EXPECT_TRUE(is_one_error_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("inside the checkpoint folder"), std::string::npos) << r.err;
  }
  EXPECT_EQ(read_text(run() / "final/model.bin"), before);
  EXPECT_FALSE(fs::exists(run() / "final/model.safetensors"));
  EXPECT_EQ(run_cli({"eval", "--checkpoint", run().string()}).status, 0);
  // Another program's manifest.json above --out does not make a checkpoint folder.
  fs::create_directories(dir_->path() / "webapp");
  dir_->write("webapp/manifest.json", R"({"name": "my web app"})");
  r = run_cli({"export", "--checkpoint", run().string(), "--out", (dir_->path() / "webapp/m.safetensors").string()});
  EXPECT_EQ(r.status, 0) << r.err;
}

}  // namespace
}  // namespace compressm::testing
