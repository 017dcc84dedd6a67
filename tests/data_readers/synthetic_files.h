// Small synthetic dataset files (idx, CIFAR-10 binary, digits CSV) and
// gzip writing, for the reader tests.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace compressm::testing {

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline std::string big_endian(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
          static_cast<char>(value)};
}

// The pixel of image i at flat position k of the synthetic sets: distinct
// first pixels (i % 256) so examples can be recognised after shuffling.
inline uint8_t synthetic_pixel(int64_t i, int64_t k) { return static_cast<uint8_t>((i + 37 * k) % 256); }

// idx images {count, rows, cols} with synthetic_pixel values.
inline std::string idx_images(uint32_t count, uint32_t rows = 28, uint32_t cols = 28, uint32_t magic = 0x803) {
  std::string bytes = big_endian(magic) + big_endian(count) + big_endian(rows) + big_endian(cols);
  for (uint32_t i = 0; i < count; ++i) {
    for (uint32_t k = 0; k < rows * cols; ++k) bytes += static_cast<char>(synthetic_pixel(i, k));
  }
  return bytes;
}

// idx labels: label of example i is i % 10.
inline std::string idx_labels(uint32_t count, uint32_t magic = 0x801) {
  std::string bytes = big_endian(magic) + big_endian(count);
  for (uint32_t i = 0; i < count; ++i) bytes += static_cast<char>(i % 10);
  return bytes;
}

inline std::string gzipped(const std::string& bytes) {
  z_stream s{};
  if (deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&s, bytes.size()) + 64, '\0');
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  s.avail_in = static_cast<uInt>(bytes.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  return out;
}

// An MNIST directory: `train_count` and `test_count` 28x28 images, raw or gzipped.
inline void write_mnist_dir(const std::filesystem::path& dir, uint32_t train_count, uint32_t test_count, bool gzip) {
  std::filesystem::create_directories(dir);
  const auto put = [&](const std::string& name, const std::string& bytes) {
    write_file(dir / (name + (gzip ? ".gz" : "")), gzip ? gzipped(bytes) : bytes);
  };
  put("train-images-idx3-ubyte", idx_images(train_count));
  put("train-labels-idx1-ubyte", idx_labels(train_count));
  put("t10k-images-idx3-ubyte", idx_images(test_count));
  put("t10k-labels-idx1-ubyte", idx_labels(test_count));
}

// CIFAR-10 records: label of record i is (i + first) % 10, pixel k of the
// three planes synthetic_pixel(i + first, k).
inline std::string cifar_records(int64_t count, int64_t first = 0) {
  std::string bytes;
  for (int64_t i = first; i < first + count; ++i) {
    bytes += static_cast<char>(i % 10);
    for (int64_t k = 0; k < 3072; ++k) bytes += static_cast<char>(synthetic_pixel(i, k));
  }
  return bytes;
}

// A CIFAR-10 directory: five training batches of `per_batch` records
// (records numbered 0..5*per_batch-1) and a test batch of `test_count`
// records numbered from 1000.
inline void write_cifar_dir(const std::filesystem::path& dir, int64_t per_batch, int64_t test_count) {
  std::filesystem::create_directories(dir);
  for (int b = 1; b <= 5; ++b) {
    write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(per_batch, (b - 1) * per_batch));
  }
  write_file(dir / "test_batch.bin", cifar_records(test_count, 1000));
}

// A digits row: pixel k of row i is (i + k) % 17, label i % 10.
inline std::string digits_row(int64_t i) {
  std::string row;
  for (int64_t k = 0; k < 64; ++k) row += std::to_string((i + k) % 17) + ",";
  return row + std::to_string(i % 10) + "\n";
}

inline std::string digits_csv(int64_t rows) {
  std::string text;
  for (int64_t i = 0; i < rows; ++i) text += digits_row(i);
  return text;
}

// Runs `load` and checks it throws DataError whose message contains every
// one of `needles` (the file name and the problem).
inline void expect_data_error(const std::function<void()>& load, const std::vector<std::string>& needles) {
  try {
    load();
    ADD_FAILURE() << "expected DataError containing " << needles.front();
  } catch (const compressm::data::DataError& error) {
    const std::string message = error.what();
    for (const std::string& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message << "\nmissing: " << needle;
    }
  }
}

}  // namespace compressm::testing
