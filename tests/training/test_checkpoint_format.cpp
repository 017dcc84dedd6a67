// Pieces of the training engine that need no training: the learning-rate
// schedule, the tensor file format, the manifest checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "support/temp_dir.h"
#include "training/checkpoint.h"
#include "training/checkpoint_files.h"
#include "training/learning_rate_schedule.h"

namespace compressm::training {
namespace {

TEST(LearningRateSchedule, WarmsUpLinearlyThenDecaysByCosineTo1e7) {
  const double peak = 0.01;
  const int64_t steps = 1000;  // warm-up 100 steps
  EXPECT_DOUBLE_EQ(scheduled_learning_rate(peak, 0, steps, true), peak / 100);
  EXPECT_DOUBLE_EQ(scheduled_learning_rate(peak, 49, steps, true), peak / 2);
  EXPECT_DOUBLE_EQ(scheduled_learning_rate(peak, 100, steps, true), peak);
  EXPECT_NEAR(scheduled_learning_rate(peak, 550, steps, true), kFinalLearningRate + (peak - kFinalLearningRate) / 2,
              1e-15);
  EXPECT_NEAR(scheduled_learning_rate(peak, 1000, steps, true), kFinalLearningRate, 1e-18);
  EXPECT_DOUBLE_EQ(scheduled_learning_rate(peak, 500, steps, false), peak);
}

TEST(Fnv1a, MatchesTheReferenceValues) {
  EXPECT_EQ(fnv1a_64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a_64("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a_64("foobar", 6), 0x85944171f73967e8ULL);
}

TEST(TensorFile, RoundTripsNamesDtypesShapesAndBytes) {
  NamedTensors tensors = {{"a.weight", torch::randn({3, 4})},
                          {"b", torch::arange(5, torch::kLong)},
                          {"rng", torch::randint(0, 255, {7}, torch::kByte)},
                          {"scalar", torch::tensor(2.5, torch::kDouble)}};
  const NamedTensors back = decode_tensors(encode_tensors(tensors), "x");
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), tensors[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second));
  }
}

// A header that claims a 4 TB tensor (shape and byte count consistent with
// each other) in a file of a few bytes: an error before any allocation.
TEST(TensorFile, AHeaderClaimingMoreThanTheFileHoldsIsAnError) {
  std::string bytes = encode_tensors({{"w", torch::randn({10})}});
  const size_t nbytes_at = bytes.size() - 40 - 8, size_at = nbytes_at - 8;  // ... {10} 40 [40 bytes]
  auto set = [&](size_t at, uint64_t value) { std::memcpy(&bytes[at], &value, sizeof value); };
  set(size_at, uint64_t{1} << 40);
  set(nbytes_at, uint64_t{1} << 42);
  try {
    decode_tensors(bytes, "f");
    ADD_FAILURE() << "accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("f: tensor 'w': byte count does not match its shape"), std::string::npos)
        << e.what();
  }
}

TEST(TensorFile, TruncatedOrForeignBytesAreCheckpointErrors) {
  const std::string bytes = encode_tensors({{"w", torch::randn({10})}});
  for (size_t keep : {size_t{0}, size_t{5}, size_t{12}, bytes.size() - 1}) {
    EXPECT_THROW(decode_tensors(bytes.substr(0, keep), "f"), CheckpointError) << keep;
  }
  EXPECT_THROW(decode_tensors(bytes + "x", "f"), CheckpointError);
  EXPECT_THROW(decode_tensors("PK\x03\x04 not ours", "f"), CheckpointError);
}

TEST(Manifest, DetectsTruncationCorruptionAndMissingFiles) {
  testing::TempDir dir;
  dir.write("a.bin", "0123456789");
  dir.write("b.json", "{}");
  write_manifest(dir.path());
  EXPECT_NO_THROW(verify_manifest(dir.path()));

  dir.write("a.bin", "01234");
  try {
    verify_manifest(dir.path());
    FAIL() << "truncation not detected";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("a.bin"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  dir.write("a.bin", "0123456780");
  EXPECT_THROW(verify_manifest(dir.path()), CheckpointError);
  dir.write("a.bin", "0123456789");
  std::filesystem::remove(dir / "b.json");
  EXPECT_THROW(verify_manifest(dir.path()), CheckpointError);
  dir.write("manifest.json", "{\"format\": ");
  EXPECT_THROW(verify_manifest(dir.path()), CheckpointError);
  std::filesystem::remove(dir / "manifest.json");
  EXPECT_THROW(verify_manifest(dir.path()), CheckpointError);
}

// read_checkpoint reads only files the manifest lists: a rollback.bin put in
// afterwards, or a core file left out of the list, is an error naming it.
TEST(Manifest, EveryFileACheckpointReadsMustBeListed) {
  testing::TempDir dir;
  const std::string tensors = encode_tensors({{"w", torch::randn({3})}});
  auto write_core = [&](bool with_state) {
    dir.write("model.bin", tensors);
    dir.write("optimizer.bin", tensors);
    dir.write("config.yaml", "seed: 1\n");
    if (with_state) dir.write("state.json", "{}");
  };
  write_core(true);
  write_manifest(dir.path());
  EXPECT_NO_THROW(read_checkpoint(dir.path()));
  dir.write("rollback.bin", tensors);
  auto expect_unlisted = [&](const std::string& name) {
    try {
      read_checkpoint(dir.path());
      ADD_FAILURE() << name << " accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("manifest.json: does not list " + name), std::string::npos) << e.what();
    }
  };
  expect_unlisted("rollback.bin");
  std::filesystem::remove(dir / "rollback.bin");
  std::filesystem::remove(dir / "state.json");
  write_manifest(dir.path());
  write_core(true);  // state.json back, after the manifest
  expect_unlisted("state.json");
}

// A negative size in the manifest is named as such (it printed as 2^64 - 5).
TEST(Manifest, ANegativeSizeIsNamed) {
  testing::TempDir dir;
  dir.write("a.bin", "0123456789");
  write_manifest(dir.path());
  std::string text = testing::read_text(dir / "manifest.json");
  const std::string size = "\"size\": 10";
  const size_t at = text.find(size);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, size.size(), "\"size\": -5");
  dir.write("manifest.json", text);
  try {
    verify_manifest(dir.path());
    FAIL() << "a negative size was accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("the size of 'a.bin' is not a byte count (-5)"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace compressm::training
