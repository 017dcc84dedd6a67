// graphed_step.h in a build without CUDA: nothing to capture.
#include "nn/graphed_step.h"

#include <c10/util/Exception.h>

namespace compressm::nn {

struct GraphedTrainStep::Impl {};

bool graphs_compiled() { return false; }

GraphedTrainStep::GraphedTrainStep(LruModel, torch::optim::AdamW&) {
  TORCH_CHECK(false, "CUDA graphs: this build of compressm has no CUDA (CPU-only LibTorch)");
}

GraphedTrainStep::~GraphedTrainStep() = default;

std::pair<double, int64_t> GraphedTrainStep::step(const torch::Tensor&, const torch::Tensor&) {
  TORCH_CHECK(false, "CUDA graphs: this build of compressm has no CUDA");
  return {0.0, 0};
}

void GraphedTrainStep::submit(const torch::Tensor&, const torch::Tensor&) {
  TORCH_CHECK(false, "CUDA graphs: this build of compressm has no CUDA");
}

std::pair<double, int64_t> GraphedTrainStep::collect() {
  TORCH_CHECK(false, "CUDA graphs: this build of compressm has no CUDA");
  return {0.0, 0};
}

int GraphedTrainStep::pending() const { return 0; }

double GraphedTrainStep::collected_seconds() const { return 0; }

bool GraphedTrainStep::captured() const { return false; }

}  // namespace compressm::nn
