#include "data/dataset.h"

#include <algorithm>
#include <cmath>

#include "data/cifar10.h"
#include "data/digits.h"
#include "data/mnist_idx.h"

namespace compressm::data {

const std::vector<std::string>& supported_names() {
  static const std::vector<std::string> names = {"smnist", "sfmnist", "scifar", "digits"};
  return names;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void check_supported(const std::string& name) {
  if (!contains(dataset_names(), name)) {
    throw DataError("unknown dataset \"" + name + "\" (valid: " + joined(dataset_names()) + ")");
  }
  if (!contains(supported_names(), name)) {
    throw DataError("dataset \"" + name + "\" is not supported yet (supported: " + joined(supported_names()) + ")");
  }
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"smnist", "sfmnist", "scifar", "digits",
                                                 "listops", "imdb", "aan", "pathfinder"};
  return names;
}

std::string default_data_dir(const std::string& name) {
  if (name == "smnist") return "data/mnist";
  if (name == "sfmnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "scifar") return "data/cifar-10-batches-bin";
  if (name == "digits") return "/usr/lib/python3/dist-packages/sklearn/datasets/data";
  if (name == "listops") return "data/lra_release/listops-1000";
  if (name == "imdb") return "data/imdb";
  if (name == "aan") return "data/lra_release/tsv_data";
  if (name == "pathfinder") return "data/lra_release/pathfinder32";
  check_supported(name);  // throws: unknown name
  return {};
}

void rescale_channels(Dataset& dataset, const std::vector<float>& mean, const std::vector<float>& std) {
  const size_t channels = static_cast<size_t>(dataset.channels);
  if (dataset.channel_mean.size() != channels || dataset.channel_std.size() != channels)
    throw DataError("the dataset has no per-channel statistics to replace");
  if (mean.size() != channels || std.size() != channels)
    throw DataError("saved input statistics for " + std::to_string(mean.size()) + " channels, the dataset has " +
                    std::to_string(channels));
  for (size_t c = 0; c < channels; ++c)
    if (!(std[c] > 0.0f) || !std::isfinite(mean[c]) || !std::isfinite(std[c]))
      throw DataError("saved input statistics of channel " + std::to_string(c) +
                      " are not a finite mean and a positive std");
  if (mean == dataset.channel_mean && std == dataset.channel_std) return;
  // (x s + m - m') / s' in double: the pixel / max_pixel value, then the saved normalisation.
  for (size_t k = 0; k < dataset.inputs.size(); ++k) {
    const size_t c = k % channels;
    const double pixel = static_cast<double>(dataset.inputs[k]) * dataset.channel_std[c] + dataset.channel_mean[c];
    dataset.inputs[k] = static_cast<float>((pixel - mean[c]) / std[c]);
  }
  dataset.channel_mean = mean;
  dataset.channel_std = std;
}

int64_t sequence_length(const std::string& name) {
  if (name == "smnist" || name == "sfmnist") return 784;
  if (name == "scifar") return 1024;
  if (name == "digits") return 64;
  return 0;
}

namespace {

// The folder of dataset `name` (checked to be one when it exists).
std::filesystem::path data_folder(const std::string& name, const std::string& data_dir) {
  check_supported(name);
  const std::filesystem::path dir = data_dir.empty() ? default_data_dir(name) : data_dir;
  std::error_code error;
  if (std::filesystem::exists(dir, error) && !std::filesystem::is_directory(dir, error))
    throw DataError(dir.string() + ": not a folder");
  return dir;
}

}  // namespace

Dataset load_test_split(const std::string& name, const std::string& data_dir, uint64_t seed) {
  if (name == "smnist" || name == "sfmnist") return load_mnist_test(data_folder(name, data_dir));
  return load_dataset(name, data_dir, seed).test;
}

Splits load_dataset(const std::string& name, const std::string& data_dir, uint64_t seed) {
  const std::filesystem::path dir = data_folder(name, data_dir);
  Splits splits = name == "smnist" || name == "sfmnist" ? load_mnist(dir, seed)
                  : name == "scifar"                    ? load_cifar10(dir, seed)
                                                        : load_digits(dir, seed);
  // Validation picks the best checkpoint's test accuracy: an empty split would pick at random.
  if (splits.val.count() == 0) {
    throw DataError(dir.string() + ": " + std::to_string(splits.train.count()) +
                    " training examples leave none for validation (a tenth of them; at least 10 are needed)");
  }
  return splits;
}

}  // namespace compressm::data
