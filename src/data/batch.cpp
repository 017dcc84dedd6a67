#include "data/batch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace compressm::data {
namespace {

Batch empty_batch(const Dataset& dataset, int64_t size) {
  Batch batch;
  batch.size = size;
  batch.seq_len = dataset.seq_len;
  batch.channels = dataset.channels;
  batch.inputs.resize(static_cast<size_t>(size * dataset.example_size()));
  batch.labels.resize(static_cast<size_t>(size));
  return batch;
}

}  // namespace

Batch gather_batch(const Dataset& dataset, const int64_t* rows, int64_t size) {
  const int64_t example = dataset.example_size();
  Batch batch = empty_batch(dataset, size);
  for (int64_t k = 0; k < size; ++k) {
    if (rows[k] < 0 || rows[k] >= dataset.count()) throw std::out_of_range("gather_batch: row out of range");
    std::memcpy(&batch.inputs[k * example], &dataset.inputs[rows[k] * example], example * sizeof(float));
    batch.labels[k] = dataset.labels[rows[k]];
  }
  return batch;
}

Batch contiguous_batch(const Dataset& dataset, int64_t first, int64_t size) {
  if (first < 0 || size < 0 || first + size > dataset.count()) {
    throw std::out_of_range("contiguous_batch: range out of bounds");
  }
  const int64_t example = dataset.example_size();
  Batch batch = empty_batch(dataset, size);
  std::memcpy(batch.inputs.data(), dataset.inputs.data() + first * example, size * example * sizeof(float));
  std::memcpy(batch.labels.data(), dataset.labels.data() + first, size * sizeof(int32_t));
  return batch;
}

SequentialBatches::SequentialBatches(const Dataset& dataset, int64_t batch_size)
    : dataset_(dataset), batch_size_(batch_size) {
  if (batch_size < 1) throw std::invalid_argument("SequentialBatches: batch_size must be >= 1");
}

Batch SequentialBatches::batch(int64_t index) const {
  if (index < 0 || index >= num_batches()) throw std::out_of_range("SequentialBatches: batch index out of range");
  const int64_t first = index * batch_size_;
  return contiguous_batch(dataset_, first, std::min(batch_size_, dataset_.count() - first));
}

}  // namespace compressm::data
