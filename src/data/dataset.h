// Datasets as plain arrays (docs/design.md §5), shared by the LibTorch trainer and
// the LibTorch-free runtime. Every dataset is a sequence classification task:
// one example is a sequence of `seq_len` steps with `channels` features each.
//
//   name     files under data_dir                          seq_len x ch  classes
//   smnist   {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]   784 x 1    10
//   sfmnist  same files, Fashion-MNIST                           784 x 1    10
//   scifar   data_batch_{1..5}.bin, test_batch.bin              1024 x 3    10
//   digits   digits.csv[.gz] (scikit-learn)                       64 x 1    10
//
// Files are untrusted input: every problem throws DataError naming the file.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace compressm::data {

// Bad or missing data. One line that starts with the file (or dataset) name,
// e.g. `/d/train-images-idx3-ubyte.gz: images are 32x32, expected 28x28`.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Dataset {
  std::vector<float> inputs;    // {count, seq_len, channels}, row-major
  std::vector<int32_t> labels;  // {count}, each in [0, num_classes)
  int64_t seq_len = 0;
  int64_t channels = 0;
  int64_t num_classes = 0;
  // Per-channel normalisation applied to the raw pixels, {channels} each:
  // input = (pixel / max_pixel - channel_mean) / channel_std. Empty when the
  // pixels are only scaled to [0, 1] (smnist, sfmnist, digits).
  std::vector<float> channel_mean;
  std::vector<float> channel_std;

  int64_t count() const { return static_cast<int64_t>(labels.size()); }
  int64_t example_size() const { return seq_len * channels; }
};

struct Splits {
  Dataset train, val, test;
};

// Re-expresses `dataset`'s inputs, normalised with its own channel_mean and
// channel_std, with `mean` and `std` instead (a run's saved statistics: the
// training files of another data folder give other ones, and the model saw
// its own). Throws DataError when the dataset has no per-channel statistics
// or the sizes differ.
void rescale_channels(Dataset& dataset, const std::vector<float>& mean, const std::vector<float>& std);

// Every dataset name of the config (docs/design.md §3), supported or not.
const std::vector<std::string>& dataset_names();

// The names load_dataset reads (the others are parsed configs only).
const std::vector<std::string>& supported_names();

// Where `name`'s files are looked for when the config gives no data_dir:
//   sfmnist  /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)
//   digits   /usr/lib/python3/dist-packages/sklearn/datasets/data (python3-sklearn)
//   smnist   data/mnist,  scifar  data/cifar-10-batches-bin (relative to the cwd)
//   LRA      data/lra_release/... and data/imdb (readers not written yet)
// Throws DataError for an unknown name.
std::string default_data_dir(const std::string& name);

// The length of every sequence of dataset `name` (784, 1024, 64), or 0 when
// its sequences vary in length or it has no reader yet.
int64_t sequence_length(const std::string& name);

// Reads the train/val/test splits of dataset `name` from `data_dir` (empty:
// default_data_dir(name)). The val split is a seeded 10% of the training
// examples (split.h), so it is the same for the same seed on every platform.
// Throws DataError for an unknown or not yet supported name (listops, imdb,
// aan, pathfinder), for any problem with the files, and for fewer than 10
// training examples (an empty val split).
Splits load_dataset(const std::string& name, const std::string& data_dir, uint64_t seed);

// Only the test split, for eval and classify: smnist and sfmnist read only
// their t10k files; scifar still reads the training batches (its channel
// statistics), digits its one file.
Dataset load_test_split(const std::string& name, const std::string& data_dir, uint64_t seed);

}  // namespace compressm::data
