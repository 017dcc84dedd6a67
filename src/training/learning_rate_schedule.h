// The learning-rate schedule of docs/design.md §1: optional 10% linear warm-up,
// then cosine decay to 1e-7.
#pragma once

#include <cstdint>

namespace compressm::training {

constexpr double kFinalLearningRate = 1e-7;

// Learning rate for 0-based step `step` of `num_steps`, peak `peak_lr`:
//   warm-up (step < W = max(1, num_steps / 10)):  peak * (step + 1) / W
//   cosine:  1e-7 + (peak - 1e-7) * (1 + cos(pi * t)) / 2,  t = (step - W) / max(1, num_steps - W)
// With `warmup_cosine` false the rate is constant.
double scheduled_learning_rate(double peak_lr, int64_t step, int64_t num_steps, bool warmup_cosine);

}  // namespace compressm::training
