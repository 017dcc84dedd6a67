// A run's saved input statistics as JSON, {"mean": [...], "std": [...]}: in a
// checkpoint's state.json and in an exported model's metadata. Header-only so
// that the data library itself stays free of JSON (its users link nlohmann).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "data/dataset.h"

namespace compressm::data {

// The statistics `train` was normalised with, or null when it has none
// (datasets scaled to [0, 1] only).
inline nlohmann::json input_scaling_json(const Dataset& train) {
  if (train.channel_mean.empty()) return nullptr;
  return {{"mean", train.channel_mean}, {"std", train.channel_std}};
}

// rescale_channels with the statistics in `scaling`. Throws DataError when it
// is not {"mean": [numbers], "std": [numbers]} or does not fit the dataset.
inline void rescale_channels(Dataset& dataset, const nlohmann::json& scaling) {
  std::vector<float> mean, std;
  if (scaling.is_object() && scaling.contains("mean") && scaling.contains("std")) {
    try {
      mean = scaling["mean"].get<std::vector<float>>();
      std = scaling["std"].get<std::vector<float>>();
    } catch (const nlohmann::json::exception&) {
      mean.clear();
    }
  }
  if (mean.empty()) throw DataError(R"(is not {"mean": [numbers], "std": [numbers]})");
  rescale_channels(dataset, mean, std);
}

}  // namespace compressm::data
