// The key under which LibTorch's optimisers keep a parameter's state: its
// TensorImpl address, as a string in LibTorch 1.13 and as the pointer itself
// in LibTorch 2.x. Shared by checkpoints, reductions and the graphed step.
#pragma once

#include <torch/optim/optimizer.h>

#include <sstream>
#include <type_traits>
#include <utility>

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

inline OptimizerStateKey optimizer_key(const torch::Tensor& parameter) {
  return detail::key_of_impl<OptimizerStateKey>(parameter.unsafeGetTensorImpl());
}

}  // namespace compressm::nn
