#include "data/mnist_idx.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "data/file_bytes.h"
#include "data/split.h"

namespace compressm::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSide = 28;
constexpr int64_t kClasses = 10;

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
  throw DataError(path.string() + ": " + problem);
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

// Checks the magic and reads `dims` big-endian u32 dimensions after it;
// returns them. The payload starts at byte 4 + 4 * dims.
std::vector<uint64_t> idx_header(const fs::path& path, const std::vector<uint8_t>& bytes,
                                 uint32_t magic, size_t dims) {
  const size_t header = 4 + 4 * dims;
  if (bytes.size() < header) {
    fail(path, "truncated idx header (" + std::to_string(bytes.size()) + " bytes, expected at least " +
                   std::to_string(header) + ")");
  }
  const uint32_t found = big_endian_u32(bytes.data());
  if (found != magic) fail(path, "bad idx magic " + hex(found) + ", expected " + hex(magic));
  std::vector<uint64_t> shape(dims);
  for (size_t d = 0; d < dims; ++d) shape[d] = big_endian_u32(bytes.data() + 4 + 4 * d);
  return shape;
}

// The payload must be exactly `expected` bytes: no silent partial reads.
void expect_payload(const fs::path& path, const std::vector<uint8_t>& bytes, size_t header,
                    uint64_t expected) {
  const uint64_t payload = bytes.size() - header;
  if (payload < expected) {
    fail(path, "truncated: header promises " + std::to_string(expected) + " data bytes, file has " +
                   std::to_string(payload));
  }
  // (A gzip file is inflated only one byte past the header's size: no count here.)
  if (payload > expected) fail(path, "more data than the " + std::to_string(expected) + " bytes the header promises");
}

// The size an idx file's header gives (saturated at kMaxFileBytes), for
// read_file_bytes; with another magic only the header, which the reader then
// names as the problem.
SizeBound idx_size(uint32_t magic, size_t dims) {
  const size_t header = 4 + 4 * dims;
  return {header, [=](const uint8_t* bytes) -> uint64_t {
            if (big_endian_u32(bytes) != magic) return header;
            uint64_t payload = 1;
            for (size_t d = 0; d < dims; ++d)  // <= 2^31 * (2^32 - 1): no overflow
              payload = std::min<uint64_t>(payload * big_endian_u32(bytes + 4 + 4 * d), kMaxFileBytes);
            return header + payload;
          }};
}

}  // namespace

Dataset read_mnist_pair(const fs::path& images, const fs::path& labels) {
  const std::vector<uint8_t> image_bytes = read_file_bytes(images, kMaxFileBytes, idx_size(kIdxImagesMagic, 3));
  const std::vector<uint64_t> shape = idx_header(images, image_bytes, kIdxImagesMagic, 3);
  if (shape[1] != kSide || shape[2] != kSide) {
    fail(images, "images are " + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) + ", expected 28x28");
  }
  const uint64_t count = shape[0];
  if (count == 0) fail(images, "contains no images");
  expect_payload(images, image_bytes, 16, count * kSide * kSide);

  const std::vector<uint8_t> label_bytes = read_file_bytes(labels, kMaxFileBytes, idx_size(kIdxLabelsMagic, 1));
  const uint64_t label_count = idx_header(labels, label_bytes, kIdxLabelsMagic, 1)[0];
  expect_payload(labels, label_bytes, 8, label_count);
  if (label_count != count) {
    fail(labels, "has " + std::to_string(label_count) + " labels but " + images.filename().string() + " has " +
                     std::to_string(count) + " images");
  }

  Dataset out;
  out.seq_len = kSide * kSide;
  out.channels = 1;
  out.num_classes = kClasses;
  out.labels.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t label = label_bytes[8 + i];
    if (label >= kClasses) {
      fail(labels, "label " + std::to_string(label) + " of example " + std::to_string(i) + " is outside [0, 10)");
    }
    out.labels[i] = label;
  }
  out.inputs.resize(count * kSide * kSide);  // {count, 784, 1}
  for (size_t k = 0; k < out.inputs.size(); ++k) out.inputs[k] = image_bytes[16 + k] / 255.0f;
  return out;
}

namespace {

// The pair `prefix`-{images-idx3,labels-idx1}-ubyte[.gz] of `dir`.
Dataset read_mnist_files(const fs::path& dir, const std::string& prefix) {
  const auto gz_or_raw = [&](const std::string& name) { return first_existing({dir / (name + ".gz"), dir / name}); };
  const fs::path images = gz_or_raw(prefix + "-images-idx3-ubyte");  // looked up first: reported first
  return read_mnist_pair(images, gz_or_raw(prefix + "-labels-idx1-ubyte"));
}

}  // namespace

Splits load_mnist(const fs::path& dir, uint64_t seed) {
  Splits splits;
  split_train_val(read_mnist_files(dir, "train"), seed, splits.train, splits.val);
  splits.test = read_mnist_files(dir, "t10k");
  return splits;
}

Dataset load_mnist_test(const fs::path& dir) { return read_mnist_files(dir, "t10k"); }

}  // namespace compressm::data
