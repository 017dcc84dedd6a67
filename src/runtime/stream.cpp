#include "runtime/stream.h"

#include <stdexcept>
#include <string>

namespace compressm::runtime {

Stream::Stream(const Model& model) : model_(&model), scratch_(model.weights().blocks.size()) {
  h_.resize(model.architecture().hidden_dim, 1);
  reset();
}

void Stream::reset() {
  state_.blocks.clear();
  for (const BlockWeights& w : model_->weights().blocks) state_.blocks.push_back(zero_state(w));
  state_.output_sum = Eigen::VectorXd::Zero(model_->architecture().hidden_dim);
  state_.steps = 0;
  state_.output.resize(0);
  logits_.resize(0);
}

const VectorF& Stream::step(const float* input) {
  model_->encode(input, 0, h_);  // throws before any state changes
  const auto& blocks = model_->weights().blocks;
  for (size_t b = 0; b < blocks.size(); ++b) run_block(blocks[b], h_, state_.blocks[b], scratch_[b]);
  state_.output = h_.col(0);
  state_.output_sum += state_.output.cast<double>();
  state_.steps += 1;
  // Mean pooling so far: head((1/(t+1)) sum_{k<=t} h_k).
  logits_ = model_->head((state_.output_sum / static_cast<double>(state_.steps)).cast<float>());
  require_finite_output(logits_);
  return logits_;
}

void Stream::restore(const StreamState& state) {
  const auto& blocks = model_->weights().blocks;
  bool fits = state.blocks.size() == blocks.size() && state.steps >= 0 &&
              state.output_sum.size() == model_->architecture().hidden_dim &&
              state.output.size() == (state.steps > 0 ? model_->architecture().hidden_dim : 0);
  for (size_t b = 0; fits && b < blocks.size(); ++b)
    fits = state.blocks[b].x.size() == 2 * blocks[b].lambda_re.size();
  if (!fits) throw std::invalid_argument("Stream::restore: the state belongs to a model of other sizes");
  state_ = state;
  if (state_.steps > 0)
    logits_ = model_->head((state_.output_sum / static_cast<double>(state_.steps)).cast<float>());
  else
    logits_.resize(0);
}

}  // namespace compressm::runtime
