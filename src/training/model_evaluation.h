// Accuracy of a model on a whole split, in eval mode without gradients.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "data/batch.h"
#include "data/dataset.h"
#include "nn/lru_model.h"

namespace compressm::training {

struct Accuracy {
  double accuracy = 0;  // correct / count (0 for an empty split)
  int64_t correct = 0;
  int64_t count = 0;
  double loss = 0;      // mean cross-entropy (0 for an empty split)
};

// Inputs of a batch as a {B, L, channels} float tensor and labels as int64 {B},
// on `device`. On the CPU the input tensor views `batch`'s memory: keep `batch`
// alive while using it.
torch::Tensor batch_inputs(data::Batch& batch, const torch::Device& device = torch::kCPU);
torch::Tensor batch_labels(const data::Batch& batch, const torch::Device& device = torch::kCPU);


// Every example once, in order, `batch_size` at a time. Leaves the model in
// the mode it found it in.
Accuracy evaluate_accuracy(nn::LruModel& model, const data::Dataset& split, int64_t batch_size);

}  // namespace compressm::training
