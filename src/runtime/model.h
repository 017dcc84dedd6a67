// The LibTorch-free inference runtime: a model loaded from an exported file
// (model_file.h) classifies whole sequences, the same computation as
// LibTorch's eval-mode forward (BatchNorm with running statistics, no dropout):
//
//   h = encoder(u)          {H, L}   (Linear, or Embedding of token ids)
//   h = block_b(h)          b = 0..blocks-1 (block_pass.h)
//   logits = head(mean over time of h)        {classes}
//
// A Model is immutable after loading: any number of threads may use one.
// Streaming (one step at a time, with state save/restore) is in stream.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "runtime/block_pass.h"
#include "runtime/model_file.h"

namespace compressm::runtime {

class Model {
 public:
  explicit Model(ModelWeights weights) : weights_(std::move(weights)) {}

  // Reads and validates a model file. Throws ModelFileError naming `path`.
  static Model load(const std::filesystem::path& path);

  const Architecture& architecture() const { return weights_.architecture; }
  const ModelWeights& weights() const { return weights_; }

  // inputs {length, input_dim} row-major (with a vocabulary: {length} token ids,
  // integral floats in [0, vocab)) -> logits {classes}. Throws
  // std::invalid_argument for length < 1, a bad token id, or logits that
  // overflowed float32.
  VectorF classify(const float* inputs, int64_t length) const;

  // The encoder applied to steps [first, first + h.cols()) of `inputs`: h {H, T}.
  void encode(const float* inputs, int64_t first, Eigen::Ref<MatrixF> h) const;
  // head(pooled): pooled {H} -> logits {classes}.
  VectorF head(const VectorF& pooled) const;

 private:
  ModelWeights weights_;
};

// The logits of `count` sequences {count, length, input_dim} row-major, on up
// to `threads` threads (the calling thread runs the shares of threads it
// cannot start).
std::vector<VectorF> predict_logits(const Model& model, const float* inputs, int64_t count, int64_t length,
                                    int threads);
// Their predicted classes (argmax of the logits, first on ties as torch's argmax).
std::vector<int32_t> predict_classes(const Model& model, const float* inputs, int64_t count, int64_t length,
                                     int threads);
// Mean of -log softmax(logits)[label] (double; 0 for no sequences), as `compressm eval`'s loss.
double mean_cross_entropy(const std::vector<VectorF>& logits, const std::vector<int32_t>& labels);

// Throws std::invalid_argument when `logits` are not finite: finite inputs and
// weights can still overflow float32 on the way, and no class is then an answer.
void require_finite_output(const VectorF& logits);

// Index of the largest logit; the first one on ties.
int32_t argmax(const VectorF& logits);

// softmax(logits), computed stably (max subtracted).
VectorF softmax(const VectorF& logits);

}  // namespace compressm::runtime
