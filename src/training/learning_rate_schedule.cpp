#include "training/learning_rate_schedule.h"

#include <algorithm>
#include <cmath>

namespace compressm::training {

double scheduled_learning_rate(double peak_lr, int64_t step, int64_t num_steps, bool warmup_cosine) {
  if (!warmup_cosine) return peak_lr;
  const int64_t warmup = std::max<int64_t>(1, num_steps / 10);
  if (step < warmup) return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double t = static_cast<double>(step - warmup) /
                   static_cast<double>(std::max<int64_t>(1, num_steps - warmup));
  const double pi = 3.14159265358979323846;
  return kFinalLearningRate +
         (peak_lr - kFinalLearningRate) * 0.5 * (1.0 + std::cos(pi * std::min(1.0, t)));
}

}  // namespace compressm::training
