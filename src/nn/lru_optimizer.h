// The LRU model's optimiser (docs/design.md §1): AdamW with two parameter groups,
// and the key under which LibTorch's optimisers keep a parameter's state.
// Shared by the trainer, the step benchmark, checkpoints, reductions and the
// graphed step.
#pragma once

#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <sstream>
#include <type_traits>
#include <utility>

#include "nn/lru_model.h"

namespace compressm::nn {

using OptimizerStateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

namespace detail {
// Templated so that only the branch of the LibTorch in use is compiled.
template <typename Key>
Key key_of_impl(void* impl) {
  if constexpr (std::is_pointer_v<Key>) {
    return impl;
  } else {
    std::ostringstream text;  // what LibTorch 1.13's c10::guts::to_string writes
    text << impl;
    return text.str();
  }
}
}  // namespace detail

// Its TensorImpl address: a string in LibTorch 1.13, the pointer itself in 2.x.
inline OptimizerStateKey optimizer_key(const torch::Tensor& parameter) {
  return detail::key_of_impl<OptimizerStateKey>(parameter.unsafeGetTensorImpl());
}

// AdamW over the model's current parameters: group 0 the SSM parameters at
// `ssm_lr` without weight decay, group 1 the others at `lr` with `weight_decay`.
std::unique_ptr<torch::optim::AdamW> make_lru_adamw(const LruModel& model, double ssm_lr, double lr,
                                                    double weight_decay);

}  // namespace compressm::nn
