#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

namespace compressm::runtime {

Model Model::load(const std::filesystem::path& path) {
  return Model(model_weights(read_safetensors(path), path.string()));
}

void Model::encode(const float* inputs, int64_t first, Eigen::Ref<MatrixF> h) const {
  const Architecture& a = weights_.architecture;
  const Eigen::Index steps = h.cols();
  if (a.vocab_size == 0) {
    // Row-major {T, input_dim} is column-major {input_dim, T}: h = W u + b.
    const Eigen::Map<const MatrixF> u(inputs + first * a.input_dim, a.input_dim, steps);
    h.noalias() = weights_.encoder_weight * u;
    h.colwise() += weights_.encoder_bias;
    return;
  }
  for (Eigen::Index t = 0; t < steps; ++t) {
    const float token = inputs[first + t];
    if (!(token >= 0 && token < static_cast<float>(a.vocab_size) && token == std::floor(token)))
      throw std::invalid_argument("step " + std::to_string(first + t) + ": token id " + std::to_string(token) +
                                  " is not an integer in [0, " + std::to_string(a.vocab_size) + ")");
    h.col(t) = weights_.embedding.col(static_cast<Eigen::Index>(token));
  }
}

VectorF Model::head(const VectorF& pooled) const {
  return weights_.head_weight * pooled + weights_.head_bias;
}

VectorF Model::classify(const float* inputs, int64_t length) const {
  if (length < 1) throw std::invalid_argument("a sequence needs at least one step");
  const Architecture& a = weights_.architecture;
  std::vector<BlockState> states;
  for (const BlockWeights& w : weights_.blocks) states.push_back(zero_state(w));
  BlockScratch scratch;
  MatrixF h;                                                  // {H, T}
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(a.hidden_dim);  // sum over time of the last block's output
  // Chunk by chunk through every block: the states carry over between chunks.
  for (int64_t first = 0; first < length; first += kChunkSteps) {
    h.resize(a.hidden_dim, std::min<int64_t>(kChunkSteps, length - first));
    encode(inputs, first, h);
    for (size_t b = 0; b < weights_.blocks.size(); ++b) run_block(weights_.blocks[b], h, states[b], scratch);
    sum += h.cast<double>().rowwise().sum();
  }
  VectorF logits = head((sum / static_cast<double>(length)).cast<float>());
  require_finite_output(logits);  // e.g. an input of 3e38, or extreme weights
  return logits;
}

void require_finite_output(const VectorF& logits) {
  if (!logits.allFinite())
    throw std::invalid_argument("the model's output is not finite (float32 overflow in the forward pass: an input "
                                "value or a weight is too large)");
}

int32_t argmax(const VectorF& logits) {
  Eigen::Index best = 0;
  for (Eigen::Index i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

VectorF softmax(const VectorF& logits) {
  const float largest = logits[argmax(logits)];  // (GCC 12 warns inside Eigen's AVX-512 maxCoeff)
  const VectorF e = (logits.array() - largest).exp();
  return e / e.sum();
}

std::vector<int32_t> predict_classes(const Model& model, const float* inputs, int64_t count, int64_t length,
                                     int threads) {
  const std::vector<VectorF> logits = predict_logits(model, inputs, count, length, threads);
  std::vector<int32_t> classes(logits.size());
  for (size_t s = 0; s < logits.size(); ++s) classes[s] = argmax(logits[s]);
  return classes;
}

double mean_cross_entropy(const std::vector<VectorF>& logits, const std::vector<int32_t>& labels) {
  if (logits.size() != labels.size()) throw std::invalid_argument("mean_cross_entropy: one label per sequence");
  double sum = 0.0;
  for (size_t s = 0; s < logits.size(); ++s) {
    const Eigen::VectorXd z = logits[s].cast<double>();
    const double largest = z.maxCoeff();
    sum += largest + std::log((z.array() - largest).exp().sum()) - z[labels[s]];  // -log softmax(z)[label]
  }
  return logits.empty() ? 0.0 : sum / static_cast<double>(logits.size());
}

std::vector<VectorF> predict_logits(const Model& model, const float* inputs, int64_t count, int64_t length,
                                    int threads) {
  std::vector<VectorF> logits(static_cast<size_t>(std::max<int64_t>(count, 0)));
  const int64_t stride = length * model.architecture().input_dim;
  // Sequences are independent: thread i takes sequences i, i + threads, ...
  auto work = [&](int64_t first, int64_t step) {
    for (int64_t s = first; s < count; s += step)
      logits[static_cast<size_t>(s)] = model.classify(inputs + s * stride, length);
  };
  const int n = static_cast<int>(std::clamp<int64_t>(threads, 1, std::max<int64_t>(count, 1)));
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto guarded = [&](int64_t first) {
    try {
      work(first, n);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  std::vector<int64_t> here = {0};  // the shares this thread runs
  pool.reserve(static_cast<size_t>(n));  // no allocation (bad_alloc) once a thread runs
  here.reserve(static_cast<size_t>(n));
  for (int i = 1; i < n; ++i) {
    try {
      pool.emplace_back(guarded, i);
    } catch (const std::system_error&) {
      here.push_back(i);  // no thread to be had (e.g. a process limit): this one takes the share
    }
  }
  for (const int64_t first : here) guarded(first);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  return logits;
}

}  // namespace compressm::runtime
