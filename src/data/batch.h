// A batch of examples as plain arrays, and in-order batches for evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace compressm::data {

struct Batch {
  std::vector<float> inputs;    // {size, seq_len, channels}, row-major
  std::vector<int32_t> labels;  // {size}
  int64_t size = 0;
  int64_t seq_len = 0;
  int64_t channels = 0;
};

// The examples `rows[0..size)` of `dataset`, in that order.
Batch gather_batch(const Dataset& dataset, const int64_t* rows, int64_t size);

// Examples [first, first + size) of `dataset`, in order.
Batch contiguous_batch(const Dataset& dataset, int64_t first, int64_t size);

// In-order, unshuffled batches for evaluation: batch i holds examples
// [i * batch_size, min((i + 1) * batch_size, count)); the last may be smaller,
// so every example is seen exactly once. `dataset` must outlive this object.
class SequentialBatches {
 public:
  // Throws std::invalid_argument if batch_size < 1.
  SequentialBatches(const Dataset& dataset, int64_t batch_size);

  int64_t num_batches() const { return (dataset_.count() + batch_size_ - 1) / batch_size_; }
  // Throws std::out_of_range unless 0 <= index < num_batches().
  Batch batch(int64_t index) const;

 private:
  const Dataset& dataset_;
  int64_t batch_size_;
};

}  // namespace compressm::data
