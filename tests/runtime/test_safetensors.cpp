// The safetensors reader on valid and hostile files: every bad file is one
// ModelFileError naming the file and the problem, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "runtime/safetensors.h"

namespace compressm::testing {
namespace {

using runtime::FloatTensor;
using runtime::ModelFileError;
using runtime::TensorFile;

TensorFile two_tensors() {
  TensorFile f;
  f.metadata["note"] = "hello";
  f.tensors["a"] = FloatTensor{{2, 3}, {1, 2, 3, 4, 5, 6}};
  f.tensors["b.c"] = FloatTensor{{2}, {-0.5f, 1e-30f}};
  return f;
}

// A file from a hand-written header and a data area.
std::string file_of(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string floats(int count) { return std::string(4 * count, '\0'); }

// Expects parse to fail with a message that starts with the source and contains `what`.
void expect_rejected(const std::string& bytes, const std::string& what) {
  try {
    runtime::parse_safetensors(bytes, "m.safetensors");
    ADD_FAILURE() << "accepted; expected: " << what;
  } catch (const ModelFileError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("m.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  const std::string bytes = runtime::encode_safetensors(two_tensors());
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);  // little-endian host
  EXPECT_EQ((8 + header) % 8, 0u);        // data area aligned
  const TensorFile back = runtime::parse_safetensors(bytes, "x");
  EXPECT_EQ(back.metadata, two_tensors().metadata);
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.tensors.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.tensors.at("a").values, two_tensors().tensors.at("a").values);
  EXPECT_EQ(back.tensors.at("b.c").values, two_tensors().tensors.at("b.c").values);
}

TEST(Safetensors, AcceptsAHandWrittenFileWithScalarsAndEmptyTensors) {
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}})";
  std::string data = floats(1);
  const float v = 2.5f;
  std::memcpy(data.data(), &v, 4);
  const TensorFile f = runtime::parse_safetensors(file_of(header, data), "x");
  EXPECT_EQ(f.tensors.at("s").values, std::vector<float>{2.5f});
  EXPECT_TRUE(f.tensors.at("e").values.empty());
}

TEST(Safetensors, RejectsShortAndTruncatedFiles) {
  expect_rejected("", "too short");
  expect_rejected("abc", "too short");
  const std::string good = runtime::encode_safetensors(two_tensors());
  expect_rejected(good.substr(0, 20), "larger than the file");        // header cut
  expect_rejected(good.substr(0, good.size() - 4), "lie outside the data area");  // data cut
  std::string huge = good;
  for (int i = 0; i < 8; ++i) huge[i] = '\xff';  // header length 2^64 - 1
  expect_rejected(huge, "larger than the file");
}

TEST(Safetensors, RejectsBrokenJson) {
  expect_rejected(file_of("{\"a\": ", ""), "not valid JSON");
  expect_rejected(file_of("[1, 2]", ""), "not a JSON object");
  expect_rejected(file_of("\"text\"", ""), "not a JSON object");
  expect_rejected(file_of("{\"a\": {\"dtype\": \"F32\", \"shape\": [[[[1]]]]}}", ""), "nested deeper");
  expect_rejected(file_of(R"({"__metadata__": {"k": 1}})", ""), "is not a string");
  expect_rejected(file_of(R"({"__metadata__": []})", ""), "__metadata__ is not a JSON object");
  const std::string t = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  expect_rejected(file_of("{\"a\":" + t + ",\"a\":" + t + "}", floats(1)), "names 'a' twice");
}

TEST(Safetensors, RejectsBadEntries) {
  expect_rejected(file_of(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", floats(1)),
                  "dtype F16, expected F32");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", floats(1)),
                  "not a non-negative integer");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", floats(1)),
                  "not a non-negative integer");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[2]}})", floats(2)), "no data_offsets");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", floats(2)),
                  "unknown field 'x'");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", floats(2)),
                  "has 8 data bytes, its shape needs 4");
  expect_rejected(file_of(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats(1)), "empty name");
}

TEST(Safetensors, RejectsHugeDimensionsBeforeAllocating) {
  // 2^40 x 2^40 floats, or a product that overflows 64 bits: refused from the
  // header alone (an allocation of that size would abort the process).
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})",
                          floats(1)),
                  "larger than the data area");
  expect_rejected(
      file_of(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", ""),
      "larger than the data area");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", floats(1)),
                  "too many dimensions");
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})",
                          floats(1)),
                  "lie outside the data area");
  // After a 0 any size keeps the product 0: a size past int64 is still refused, by name.
  expect_rejected(file_of(R"({"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", ""),
                  "shape entry 18446744073709551615 is too large");
}

TEST(Safetensors, RejectsOffsetsPastTheEndOverlapsAndGaps) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":)";
  const std::string b = R"("b":{"dtype":"F32","shape":[2],"data_offsets":)";
  expect_rejected(file_of("{" + a + "[0,8]}," + b + "[8,16]}}", floats(3)), "lie outside the data area");
  expect_rejected(file_of("{" + a + "[8,4]}}", floats(2)), "lie outside the data area");  // begin > end
  expect_rejected(file_of("{" + a + "[0,8]}," + b + "[4,12]}}", floats(3)), "overlaps");
  expect_rejected(file_of("{" + a + "[0,8]}," + b + "[0,8]}}", floats(2)), "overlaps");
  expect_rejected(file_of("{" + a + "[4,12]}}", floats(3)), "unused bytes [0, 4)");
  expect_rejected(file_of("{" + a + "[0,8]}}", floats(3)), "4 bytes after the last tensor");
  // And the same tensors in a valid layout are accepted.
  EXPECT_NO_THROW(runtime::parse_safetensors(file_of("{" + a + "[8,16]}," + b + "[0,8]}}", floats(4)), "x"));
}

TEST(Safetensors, ReadsFilesAndNamesMissingOnes) {
  EXPECT_THROW(runtime::read_safetensors("/nonexistent/m.safetensors"), ModelFileError);
  try {
    runtime::read_safetensors("/nonexistent/m.safetensors");
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/m.safetensors: no such file"), std::string::npos);
  }
}

TEST(Safetensors, EncodeRefusesInconsistentTensors) {
  TensorFile f;
  f.tensors["a"] = FloatTensor{{2, 2}, {1, 2, 3}};
  EXPECT_THROW(runtime::encode_safetensors(f), std::invalid_argument);
}

}  // namespace
}  // namespace compressm::testing
