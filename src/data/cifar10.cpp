#include "data/cifar10.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "data/file_bytes.h"
#include "data/split.h"

namespace compressm::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixels = 1024;  // 32 x 32
constexpr int64_t kChannels = 3;
constexpr int64_t kClasses = 10;

struct ChannelStats {
  std::vector<float> mean, std;
};

// Mean and (population) standard deviation of pixel/255 per channel over all
// records of `batches`, accumulated in double.
ChannelStats channel_stats(const std::vector<std::vector<uint8_t>>& batches) {
  double sum[kChannels] = {}, sum_sq[kChannels] = {};
  uint64_t n = 0;
  for (const std::vector<uint8_t>& records : batches) {
    for (size_t r = 0; r < records.size(); r += kCifarRecordBytes) {
      for (int64_t c = 0; c < kChannels; ++c) {
        const uint8_t* plane = &records[r + 1 + c * kPixels];
        uint64_t s = 0, s2 = 0;  // exact integer sums per plane
        for (int64_t t = 0; t < kPixels; ++t) s += plane[t], s2 += uint64_t{plane[t]} * plane[t];
        sum[c] += s / 255.0;
        sum_sq[c] += s2 / (255.0 * 255.0);
      }
      n += kPixels;
    }
  }
  ChannelStats stats;
  for (int64_t c = 0; c < kChannels; ++c) {
    const double mean = sum[c] / n;
    const double var = std::max(sum_sq[c] / n - mean * mean, 0.0);
    stats.mean.push_back(static_cast<float>(mean));
    // A constant channel would divide by zero: leave it unscaled.
    stats.std.push_back(var > 0 ? static_cast<float>(std::sqrt(var)) : 1.0f);
  }
  return stats;
}

// Records -> Dataset, planes {3, 1024} transposed to steps {1024, 3}.
void append_records(const std::vector<uint8_t>& records, const ChannelStats& stats, Dataset& out) {
  const size_t count = records.size() / kCifarRecordBytes;
  const size_t first = out.labels.size();
  out.labels.resize(first + count);
  out.inputs.resize((first + count) * kPixels * kChannels);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* record = &records[i * kCifarRecordBytes];
    out.labels[first + i] = record[0];
    float* example = &out.inputs[(first + i) * kPixels * kChannels];  // {1024, 3}
    for (int64_t c = 0; c < kChannels; ++c) {
      const float scale = 1.0f / (255.0f * stats.std[c]), shift = stats.mean[c] / stats.std[c];
      for (int64_t t = 0; t < kPixels; ++t) example[t * kChannels + c] = record[1 + c * kPixels + t] * scale - shift;
    }
  }
}

Dataset to_dataset(const std::vector<std::vector<uint8_t>>& batches, const ChannelStats& stats) {
  Dataset out;
  out.seq_len = kPixels;
  out.channels = kChannels;
  out.num_classes = kClasses;
  out.channel_mean = stats.mean;
  out.channel_std = stats.std;
  for (const std::vector<uint8_t>& records : batches) append_records(records, stats, out);
  return out;
}

}  // namespace

std::vector<uint8_t> read_cifar10_batch(const fs::path& path) {
  // 60,000 records: all of CIFAR-10 in one file, far above a batch's 10,000.
  std::vector<uint8_t> records = read_file_bytes(path, 60000 * uint64_t{kCifarRecordBytes});
  const auto fail = [&](const std::string& problem) { throw DataError(path.string() + ": " + problem); };
  if (records.empty()) fail("file is empty");
  if (records.size() % kCifarRecordBytes != 0) {
    fail("size " + std::to_string(records.size()) +
         " is not a multiple of the 3073-byte record (truncated or not a CIFAR-10 binary batch)");
  }
  for (size_t r = 0; r < records.size(); r += kCifarRecordBytes) {
    if (records[r] >= kClasses) {
      fail("label " + std::to_string(records[r]) + " of record " + std::to_string(r / kCifarRecordBytes) +
           " is outside [0, 10)");
    }
  }
  return records;
}

Splits load_cifar10(const fs::path& dir, uint64_t seed) {
  std::vector<std::vector<uint8_t>> train_batches;
  for (int b = 1; b <= 5; ++b) {
    train_batches.push_back(read_cifar10_batch(dir / ("data_batch_" + std::to_string(b) + ".bin")));
  }
  const std::vector<std::vector<uint8_t>> test_batches = {read_cifar10_batch(dir / "test_batch.bin")};
  const ChannelStats stats = channel_stats(train_batches);
  Splits splits;
  Dataset all = to_dataset(train_batches, stats);
  train_batches = {};
  split_train_val(std::move(all), seed, splits.train, splits.val);
  splits.test = to_dataset(test_batches, stats);
  return splits;
}

}  // namespace compressm::data
