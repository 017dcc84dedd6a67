// The safetensors reader on valid and hostile files: every bad file is one
// ModelFileError naming the file and the problem, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "runtime/model_file.h"
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

TEST(Safetensors, RejectsDuplicateKeysAtEveryLevel) {
  // The DOM keeps the last of two equal keys: an F16 tensor would pass as F32,
  // and a metadata value would be read as whichever came last.
  expect_rejected(file_of(R"({"a":{"dtype":"F16","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats(1)),
                  "tensor 'a' names 'dtype' twice");
  expect_rejected(file_of(R"({"__metadata__":{"format":"evil","format":"compressm-lru"}})", ""),
                  "__metadata__ names 'format' twice");
  expect_rejected(file_of(R"({"a":{"dtype":{"k":1,"k":2},"shape":[1],"data_offsets":[0,4]}})", floats(1)),
                  "tensor 'a' names 'k' twice");
  // Equal keys in different objects are fine.
  EXPECT_NO_THROW(runtime::parse_safetensors(
      file_of(R"({"__metadata__":{"dtype":"x"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats(1)),
      "x"));
}

TEST(Safetensors, RejectsAHeaderThatDoesNotStartWithABrace) {
  // As the reference reader, which nlohmann alone is not: it skips a UTF-8
  // byte-order mark and whitespace.
  const std::string t = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_rejected(file_of("\xef\xbb\xbf" + t, floats(1)), "starts with a UTF-8 byte-order mark, not '{'");
  expect_rejected(file_of(" " + t, floats(1)), "starts with byte 0x20, not '{'");
  expect_rejected(file_of("", ""), "header is empty");
  EXPECT_NO_THROW(runtime::parse_safetensors(file_of(t + "  ", floats(1)), "x"));  // padding after is fine
}

TEST(Safetensors, NamesFromTheHeaderStayOnOneLine) {
  // "\n" in a JSON string is a newline in the name; messages show it escaped.
  expect_rejected(file_of(R"({"a\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", floats(2)),
                  "tensor 'a\\x0ab' has 8 data bytes");
  expect_rejected(file_of(R"({"a":{"dtype":"F\u000016","shape":[1],"data_offsets":[0,4]}})", floats(1)),
                  "dtype F\\x0016, expected F32");
  expect_rejected(file_of(R"({"a\r":{},"a\r":{}})", ""), "header names 'a\\x0d' twice");
}

// A header of `count` empty tensors ("t0000000": shape [0], no data bytes).
std::string empty_tensors(uint64_t count) {
  std::string header = "{";
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = std::to_string(i);
    name.insert(0, 7 - name.size(), '0');
    header += (i ? ",\"t" : "\"t") + name + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  }
  return header + "}";
}

TEST(Safetensors, RefusesMoreHeaderEntriesThanAModelFileCanHave) {
  // The cap leaves room for the largest model file (every tensor plus __metadata__).
  runtime::Architecture largest;
  largest.state_dims.assign(static_cast<size_t>(runtime::kMaxBlocks), 1);
  EXPECT_LE(runtime::expected_tensor_shapes(largest).size() + 1, runtime::kMaxHeaderEntries);
  // Far more entries than that (cheap to write, and quadratic to parse with a
  // DOM callback): refused by count, early.
  expect_rejected(file_of(empty_tensors(20000), ""),
                  "header has more than " + std::to_string(runtime::kMaxHeaderEntries) + " entries");
  // At the cap a header loads, or fails for its real reason.
  const std::string at_cap = empty_tensors(runtime::kMaxHeaderEntries);
  EXPECT_EQ(runtime::parse_safetensors(file_of(at_cap, ""), "x").tensors.size(), runtime::kMaxHeaderEntries);
  std::string with_f16 = at_cap;
  with_f16.replace(with_f16.rfind("F32"), 3, "F16");
  expect_rejected(file_of(with_f16, ""), "dtype F16, expected F32");
  expect_rejected(file_of(at_cap.substr(0, at_cap.size() - 1) + R"(,"__metadata__":{}})", ""),
                  "more than " + std::to_string(runtime::kMaxHeaderEntries) + " entries");  // one more
  // Few entries but a huge array (a DOM of tens of bytes per value): refused while counting.
  std::string long_shape = R"({"a":{"dtype":"F32","shape":[0)";
  for (uint64_t k = 0; k < runtime::kMaxHeaderValues; ++k) long_shape += ",0";
  expect_rejected(file_of(long_shape + R"(],"data_offsets":[0,0]}})", ""),
                  "header has more than " + std::to_string(runtime::kMaxHeaderValues) + " JSON values");
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
