// Bounded fuzzing of the model loader: seeded mutations of a valid model file
// (bit flips, random bytes, header-length edits, truncation, insertions), each
// either loads (and then runs) or is one ModelFileError; nothing else may escape.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "runtime/model.h"
#include "runtime/random_model.h"
#include "runtime/stream.h"

namespace compressm::testing {
namespace {

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  return n;
}

// One random edit; positions favour the header, where the structure is.
void mutate(std::string& bytes, std::mt19937_64& rng) {
  if (bytes.empty()) return;
  const uint64_t header_end = std::min<uint64_t>(8 + header_length(bytes), bytes.size());
  auto position = [&] {
    const uint64_t limit = (rng() % 2 == 0) ? header_end : bytes.size();
    return static_cast<size_t>(rng() % std::max<uint64_t>(limit, 1));
  };
  switch (rng() % 6) {
    case 0: bytes[position()] ^= static_cast<char>(1u << (rng() % 8)); break;
    case 1: bytes[position()] = static_cast<char>(rng() % 256); break;
    case 2: {  // a header length near the true one, or anything
      const uint64_t n = (rng() % 2) ? header_length(bytes) + (rng() % 17) - 8 : rng();
      for (int i = 0; i < 8 && i < static_cast<int>(bytes.size()); ++i) bytes[i] = static_cast<char>(n >> (8 * i));
      break;
    }
    case 3: bytes.resize(position()); break;
    case 4: bytes.insert(position(), std::string(1 + rng() % 4, static_cast<char>("{}[],:\"0 9-e"[rng() % 12]))); break;
    default: {  // a digit in the header changed: shapes, offsets, sizes
      const size_t p = position();
      if (p >= 8 && p < header_end && bytes[p] >= '0' && bytes[p] <= '9') bytes[p] = static_cast<char>('0' + rng() % 10);
      else bytes[position()] ^= 0x20;
    }
  }
}

TEST(RuntimeFuzz, MutatedModelFilesLoadOrFailCleanly) {
  const Architecture a = small_architecture({12, 7});
  const std::string valid = runtime::encode_safetensors(random_model_file(a, 99));
  std::mt19937_64 rng(20261126);
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) mutate(bytes, rng);
    try {
      const runtime::Model model(runtime::model_weights(runtime::parse_safetensors(bytes, "fuzz"), "fuzz"));
      // A file that loads must also run, whole and streaming, on its declared sizes.
      const int64_t channels = model.architecture().input_dim;
      const std::vector<float> u(static_cast<size_t>(8 * channels), 0.0f);
      EXPECT_EQ(model.classify(u.data(), 8).size(), model.architecture().num_classes);
      runtime::Stream stream(model);
      stream.step(u.data());
      ++accepted;
    } catch (const runtime::ModelFileError& e) {
      const std::string message = e.what();
      ASSERT_EQ(message.rfind("fuzz: ", 0), 0u) << message;
      ASSERT_EQ(message.find('\n'), std::string::npos) << message;
      ++rejected;
    }
  }
  // Both paths were exercised (a fuzzer that only ever rejects tests little).
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 1000);
  std::printf("fuzz: %d accepted, %d rejected\n", accepted, rejected);
}

}  // namespace
}  // namespace compressm::testing
