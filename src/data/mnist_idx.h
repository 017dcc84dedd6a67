// MNIST / Fashion-MNIST in the idx format (LeCun et al.), gzipped or raw:
//   images: u32 magic 0x00000803, u32 count, u32 rows, u32 cols, count*rows*cols u8
//   labels: u32 magic 0x00000801, u32 count, count u8
// all integers big-endian. Images must be 28x28, labels in [0, 10).
#pragma once

#include <cstdint>
#include <filesystem>

#include "data/dataset.h"

namespace compressm::data {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;

// One image/label file pair as a Dataset: pixel/255, inputs {count, 784, 1}
// (row-major pixel order), 10 classes. Throws DataError naming the file at
// fault: bad magic, images not 28x28, fewer or more bytes than the header
// promises, label count != image count, a label outside [0, 10).
Dataset read_mnist_pair(const std::filesystem::path& images, const std::filesystem::path& labels);

// The smnist / sfmnist splits from `dir`: train-{images-idx3,labels-idx1}-ubyte
// and t10k-... (each `.gz` first, then raw). train+val come from the train
// files (split_train_val), test is t10k.
Splits load_mnist(const std::filesystem::path& dir, uint64_t seed);
// Only the test split (t10k-*): the training files are neither read nor needed.
Dataset load_mnist_test(const std::filesystem::path& dir);

}  // namespace compressm::data
