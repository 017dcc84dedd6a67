// A run's saved input statistics (data/input_scaling_json.h,
// data::rescale_channels): re-expressing a dataset's inputs with them, and
// the errors for malformed ones (a hand-edited state.json or export metadata).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/input_scaling_json.h"

namespace {

using compressm::data::DataError;
using compressm::data::Dataset;
using compressm::data::input_scaling_json;
using compressm::data::rescale_channels;

// Two examples of three steps over two channels, normalised with mean
// {0.5, 0.25} and std {0.2, 0.1} from the pixel values p / 255.
Dataset two_channel_dataset() {
  Dataset d;
  d.seq_len = 3;
  d.channels = 2;
  d.num_classes = 2;
  d.channel_mean = {0.5f, 0.25f};
  d.channel_std = {0.2f, 0.1f};
  for (int k = 0; k < 12; ++k) {
    const int c = k % 2;
    d.inputs.push_back((static_cast<float>(20 * k) / 255.f - d.channel_mean[c]) / d.channel_std[c]);
  }
  d.labels = {0, 1};
  return d;
}

TEST(InputScaling, ReexpressesTheInputsWithTheSavedStatistics) {
  Dataset d = two_channel_dataset();
  const Dataset before = d;
  rescale_channels(d, input_scaling_json(before));  // its own statistics: nothing changes
  EXPECT_EQ(d.inputs, before.inputs);
  rescale_channels(d, nlohmann::json{{"mean", {0.4, 0.3}}, {"std", {0.25, 0.05}}});
  const float mean[2] = {0.4f, 0.3f}, std[2] = {0.25f, 0.05f};
  for (int k = 0; k < 12; ++k) {
    const double pixel = 20.0 * k / 255.0;
    EXPECT_NEAR(d.inputs[k], (pixel - mean[k % 2]) / std[k % 2], 1e-5) << k;
  }
  EXPECT_EQ(d.channel_mean, (std::vector<float>{0.4f, 0.3f}));
  EXPECT_EQ(d.channel_std, (std::vector<float>{0.25f, 0.05f}));
  EXPECT_EQ(input_scaling_json(d), (nlohmann::json{{"mean", d.channel_mean}, {"std", d.channel_std}}));
}

TEST(InputScaling, MalformedStatisticsAreDataErrorsAndChangeNothing) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"null", "is not {\"mean\""},
      {"[0.5, 0.2]", "is not {\"mean\""},
      {R"({"mean": [0.5, 0.25]})", "is not {\"mean\""},
      {R"({"mean": "0.5", "std": [0.2, 0.1]})", "is not {\"mean\""},
      {R"({"mean": [0.5, null], "std": [0.2, 0.1]})", "is not {\"mean\""},
      {R"({"mean": [], "std": []})", "is not {\"mean\""},
      {R"({"mean": [0.5], "std": [0.2]})", "saved input statistics for 1 channels, the dataset has 2"},
      {R"({"mean": [0.5, 0.25], "std": [0.2, 0.1, 0.3]})", "saved input statistics for 2 channels"},
      {R"({"mean": [0.5, 0.25], "std": [0.2, 0]})", "channel 1 are not a finite mean and a positive std"},
      {R"({"mean": [0.5, 0.25], "std": [-0.2, 0.1]})", "channel 0 are not a finite mean and a positive std"},
      {R"({"mean": [1e300, 0.25], "std": [0.2, 0.1]})", "channel 0 are not a finite mean"},
  };
  for (const auto& [text, message] : cases) {
    Dataset d = two_channel_dataset();
    const Dataset before = d;
    try {
      rescale_channels(d, nlohmann::json::parse(text));
      ADD_FAILURE() << text << ": accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << text << ": " << e.what();
    }
    EXPECT_EQ(d.inputs, before.inputs) << text;
    EXPECT_EQ(d.channel_mean, before.channel_mean) << text;
  }
  // A dataset scaled to [0, 1] only has no statistics to replace.
  Dataset plain = two_channel_dataset();
  plain.channel_mean.clear();
  plain.channel_std.clear();
  EXPECT_EQ(input_scaling_json(plain), nullptr);
  EXPECT_THROW(rescale_channels(plain, nlohmann::json{{"mean", {0.5, 0.25}}, {"std", {0.2, 0.1}}}), DataError);
}

}  // namespace
