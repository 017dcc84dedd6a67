// The runtime's forward pass against the plain double-precision reference
// (random_model.h), streaming against the whole-sequence pass, state
// save/restore, token inputs, and the batch classifier.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "runtime/model.h"
#include "runtime/random_model.h"
#include "runtime/stream.h"

namespace compressm::testing {
namespace {

std::vector<float> random_inputs(int64_t length, int64_t channels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(length * channels));
  for (float& x : v) x = normal(rng);
  return v;
}

runtime::Model load(const TensorFile& file) { return runtime::Model(runtime::model_weights(file, "m")); }

TEST(RuntimeForward, MatchesThePlainReferenceAcrossChunkBoundaries) {
  // Lengths below, at and across the 128-step chunks of the whole-sequence pass.
  const Architecture a = small_architecture({12, 7});
  const TensorFile file = random_model_file(a, 10);
  const runtime::Model model = load(file);
  for (const int64_t length : {1, 5, 128, 129, 300}) {
    const std::vector<float> u = random_inputs(length, a.input_dim, 20 + length);
    const std::vector<double> expected = reference_logits(file, a, u, length);
    const runtime::VectorF logits = model.classify(u.data(), length);
    ASSERT_EQ(logits.size(), a.num_classes);
    EXPECT_LT(relative_error(logits, expected), 1e-5) << "L = " << length;
  }
}

TEST(RuntimeForward, TokenModelsLookUpTheEmbedding) {
  const Architecture a = small_architecture({9}, /*vocab=*/11);
  const TensorFile file = random_model_file(a, 11);
  const runtime::Model model = load(file);
  std::vector<float> tokens;
  for (int t = 0; t < 40; ++t) tokens.push_back(static_cast<float>((t * 7) % 11));
  EXPECT_LT(relative_error(model.classify(tokens.data(), 40), reference_logits(file, a, tokens, 40)), 1e-5);
  tokens[3] = 11;  // out of the vocabulary
  EXPECT_THROW(model.classify(tokens.data(), 40), std::invalid_argument);
  tokens[3] = 2.5f;
  EXPECT_THROW(model.classify(tokens.data(), 40), std::invalid_argument);
}

TEST(RuntimeStream, StreamingAWholeSequenceEqualsTheWholeSequencePass) {
  const Architecture a = small_architecture({12, 7});
  const runtime::Model model = load(random_model_file(a, 12));
  const int64_t length = 300;
  const std::vector<float> u = random_inputs(length, a.input_dim, 5);
  runtime::Stream stream(model);
  for (int64_t t = 0; t < length; ++t) {
    const runtime::VectorF& logits = stream.step(u.data() + t * a.input_dim);
    // After step t the logits are those of the prefix u[0..t].
    if (t == 0 || t == 99) {
      const runtime::VectorF prefix = model.classify(u.data(), t + 1);
      EXPECT_LT((logits - prefix).cwiseAbs().maxCoeff(), 1e-5 * prefix.cwiseAbs().maxCoeff()) << t;
    }
  }
  EXPECT_EQ(stream.steps(), length);
  const runtime::VectorF whole = model.classify(u.data(), length);
  EXPECT_LT((stream.logits() - whole).cwiseAbs().maxCoeff(), 1e-5 * whole.cwiseAbs().maxCoeff());
  EXPECT_EQ(stream.output().size(), a.hidden_dim);
}

TEST(RuntimeStream, RestoredStateContinuesExactly) {
  const Architecture a = small_architecture({12, 7});
  const runtime::Model model = load(random_model_file(a, 13));
  const std::vector<float> u = random_inputs(60, a.input_dim, 6);
  runtime::Stream stream(model);
  for (int t = 0; t < 30; ++t) stream.step(u.data() + t * a.input_dim);
  const runtime::StreamState saved = stream.save();
  for (int t = 30; t < 60; ++t) stream.step(u.data() + t * a.input_dim);
  const runtime::VectorF first = stream.logits();
  const runtime::VectorF first_output = stream.output();

  // A fresh stream, restored, replays the second half to the same bits.
  runtime::Stream other(model);
  other.restore(saved);
  EXPECT_EQ(other.steps(), 30);
  for (int t = 30; t < 60; ++t) other.step(u.data() + t * a.input_dim);
  EXPECT_EQ(other.logits(), first);
  EXPECT_EQ(other.output(), first_output);
  // And the same stream, rewound.
  stream.restore(saved);
  for (int t = 30; t < 60; ++t) stream.step(u.data() + t * a.input_dim);
  EXPECT_EQ(stream.logits(), first);

  stream.reset();
  EXPECT_EQ(stream.steps(), 0);
  EXPECT_EQ(stream.logits().size(), 0);
}

TEST(RuntimeStream, RefusesAStateOfAnotherModel) {
  const runtime::Model small = load(random_model_file(small_architecture({12, 7}), 14));
  const runtime::Model other = load(random_model_file(small_architecture({12, 6}), 14));
  runtime::Stream a(small), b(other);
  EXPECT_THROW(b.restore(a.save()), std::invalid_argument);
}

TEST(RuntimeStream, ABadTokenLeavesTheStreamUnchanged) {
  const runtime::Model model = load(random_model_file(small_architecture({5}, 4), 15));
  runtime::Stream stream(model);
  const float good = 1, bad = 9;
  stream.step(&good);
  const runtime::StreamState before = stream.save();
  EXPECT_THROW(stream.step(&bad), std::invalid_argument);
  EXPECT_EQ(stream.steps(), 1);
  EXPECT_EQ(stream.save().blocks[0].x, before.blocks[0].x);
}

// An input that overflows float32 on the way gives no logits, streamed or not.
TEST(RuntimeStream, AnOutputThatOverflowsIsAnError) {
  const Architecture a = small_architecture({12, 7});
  const runtime::Model model = load(random_model_file(a, 16));
  const std::vector<float> huge(static_cast<size_t>(a.input_dim), 3e38f);
  EXPECT_THROW(model.classify(huge.data(), 1), std::invalid_argument);
  runtime::Stream stream(model);
  EXPECT_THROW(stream.step(huge.data()), std::invalid_argument);
}

TEST(RuntimeClassify, PredictClassesOnTwoThreadsEqualsOneByOne) {
  const Architecture a = small_architecture({12, 7});
  const runtime::Model model = load(random_model_file(a, 16));
  const int64_t count = 25, length = 40;
  std::vector<float> u = random_inputs(count * length, a.input_dim, 7);
  // Each sequence gets its own offset, so that the classes differ.
  for (size_t i = 0; i < u.size(); ++i) u[i] += 0.4f * static_cast<float>(i / (length * a.input_dim)) - 5.0f;
  const std::vector<int32_t> classes = runtime::predict_classes(model, u.data(), count, length, 2);
  ASSERT_EQ(classes.size(), static_cast<size_t>(count));
  std::set<int32_t> seen;
  for (int64_t s = 0; s < count; ++s) {
    EXPECT_EQ(classes[s], runtime::argmax(model.classify(u.data() + s * length * a.input_dim, length)));
    seen.insert(classes[s]);
  }
  EXPECT_GT(seen.size(), 1u);  // a real classifier, not a constant
}

TEST(RuntimeClassify, SoftmaxAndArgmax) {
  runtime::VectorF logits(4);
  logits << 1000, 1001, 1001, -5;  // stable for large logits; first index on ties
  EXPECT_EQ(runtime::argmax(logits), 1);
  const runtime::VectorF p = runtime::softmax(logits);
  EXPECT_NEAR(p.sum(), 1.0f, 1e-6);
  EXPECT_NEAR(p[1], p[2], 1e-7);
  EXPECT_TRUE(p.allFinite());
}

}  // namespace
}  // namespace compressm::testing
