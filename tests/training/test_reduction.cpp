// In-training reduction (src/training/reduction_policy.h, block_reduction.h):
// a reduced layer stays within the balanced-truncation bound of the full one,
// training stays finite across reductions for every selection and optimiser
// policy, slicing carries exactly the kept modes' moments, and a pragmatic
// rollback restores the exact pre-reduction model and optimiser state.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "config/config.h"
#include "data/dataset.h"
#include "training/block_reduction.h"
#include "training/checkpoint.h"
#include "training/reduction_policy.h"
#include "training/runtime_setup.h"
#include "training/trainer.h"

namespace compressm::training {
namespace {

const std::string kConfigPath = std::string(COMPRESSM_SOURCE_DIR) + "/tests/training/digits_train.yaml";

bool digits_available() {
  return std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv.gz") ||
         std::filesystem::exists(data::default_data_dir("digits") + "/digits.csv");
}

nn::LruLayer copy_of(const nn::LruLayer& layer) {
  nn::LruLayer copy(layer->state_dim(), layer->hidden_dim());
  torch::NoGradGuard no_grad;
  auto from = layer->named_parameters();
  for (auto& item : copy->named_parameters()) item.value().copy_(from[item.key()]);
  return copy;
}

config::ReductionConfig tolerance_reduction(double tol, config::Selection selection) {
  config::ReductionConfig r;
  r.mode = config::ReductionMode::kTolerance;
  r.tol = tol;
  r.selection = selection;
  return r;
}

// ||y - y_r||_2 <= ||G - G_r||_inf ||u||_2 for every sequence (zero initial
// state; Re() does not increase a norm; D cancels). float32 forward: slack.
void expect_outputs_within_bound(config::Selection selection) {
  torch::manual_seed(7);
  nn::LruLayer layer(48, 6, nn::LruInit{0.5, 0.99, 6.28});
  nn::LruLayer full = copy_of(layer);
  torch::optim::AdamW optimizer(layer->parameters());
  const auto event = reduce_block(layer, optimizer, tolerance_reduction(0.9, selection), 0, 1);
  ASSERT_TRUE(event.has_value());
  ASSERT_LT(event->new_dim, 48);
  EXPECT_EQ(layer->state_dim(), event->new_dim);
  EXPECT_LE(event->hinf_error, event->hinf_bound * (1 + 1e-6));
  torch::NoGradGuard no_grad;
  const torch::Tensor u = torch::randn({6, 300, 6});
  const torch::Tensor dy = full->forward(u) - layer->forward(u);
  for (int64_t b = 0; b < u.size(0); ++b) {
    const double u_norm = u[b].norm().item<double>();
    const double dy_norm = dy[b].norm().item<double>();
    EXPECT_LE(dy_norm, event->hinf_bound * u_norm * (1 + 1e-4) + 1e-4 * u_norm) << "sequence " << b;
  }
}

TEST(BlockReduction, ReducedLayerOutputStaysWithinTheHinfBound) {
  expect_outputs_within_bound(config::Selection::kLargest);
}

TEST(BlockReduction, SmallestSelectionAlsoStaysWithinItsBound) {
  expect_outputs_within_bound(config::Selection::kSmallest);
}

TEST(BlockReduction, GateKeepsABlockWhoseRankWouldShrinkItByUnderFivePercent) {
  torch::manual_seed(3);
  nn::LruLayer layer(40, 4);
  torch::optim::AdamW optimizer(layer->parameters());
  // tol 1.0 keeps every state with nonzero HSV: r = N fails the gate.
  EXPECT_FALSE(reduce_block(layer, optimizer, tolerance_reduction(1.0, config::Selection::kLargest), 0, 1));
  EXPECT_EQ(layer->state_dim(), 40);
}

// A block too wide for the H-inf grid (N = 128, H = 32: ~3.7e8 > 2e8 units of
// work) reports its error as not measured, distinct from a measured error
// that is not finite; both survive metrics.json as null, the flag tells them apart.
TEST(BlockReduction, AnUnmeasuredErrorIsToldApartFromAnOverflow) {
  torch::manual_seed(4);
  nn::LruLayer wide(128, 32, nn::LruInit{0.5, 0.99, 6.28});
  torch::optim::AdamW optimizer(wide->parameters());
  auto event = reduce_block(wide, optimizer, tolerance_reduction(0.9, config::Selection::kLargest), 0, 1);
  ASSERT_TRUE(event.has_value());
  EXPECT_FALSE(event->hinf_measured);
  EXPECT_TRUE(std::isnan(event->hinf_error));
  EXPECT_NE(format_event(*event).find("error not measured"), std::string::npos) << format_event(*event);
  nn::LruLayer narrow(48, 6, nn::LruInit{0.5, 0.99, 6.28});
  torch::optim::AdamW narrow_optimizer(narrow->parameters());
  auto measured = reduce_block(narrow, narrow_optimizer, tolerance_reduction(0.9, config::Selection::kLargest), 0, 1);
  ASSERT_TRUE(measured.has_value());
  EXPECT_TRUE(measured->hinf_measured);
  EXPECT_EQ(format_event(*measured).find("error not"), std::string::npos) << format_event(*measured);
  measured->hinf_error = std::numeric_limits<double>::infinity();
  EXPECT_NE(format_event(*measured).find("error not finite"), std::string::npos) << format_event(*measured);
  // Through the run history's JSON and back.
  RunHistory history;
  history.reductions = {*event, *measured};
  const RunHistory back = RunHistory::from_json(nlohmann::json::parse(history.to_json().dump()));
  ASSERT_EQ(back.reductions.size(), 2u);
  EXPECT_FALSE(back.reductions[0].hinf_measured);
  EXPECT_TRUE(back.reductions[1].hinf_measured);
  EXPECT_TRUE(std::isnan(back.reductions[1].hinf_error));
  // A history written before the field: a null error reads as not measured,
  // a number as measured. A field of the wrong type is a clear error.
  nlohmann::json old = nlohmann::json::parse(history.to_json().dump());
  for (auto& e : old["reductions"]) e.erase("hinf_measured");
  const RunHistory older = RunHistory::from_json(old);
  EXPECT_FALSE(older.reductions[0].hinf_measured);
  EXPECT_FALSE(older.reductions[1].hinf_measured);  // its error was not finite: null in the file
  nlohmann::json wrong = nlohmann::json::parse(history.to_json().dump());
  wrong["reductions"][0]["hinf_measured"] = "yes";
  EXPECT_THROW(RunHistory::from_json(wrong), std::invalid_argument);
}

TEST(BlockReduction, SliceCarriesTheKeptModesMomentsForRandomSelection) {
  torch::manual_seed(11);
  nn::LruLayer layer(32, 4, nn::LruInit{0.3, 0.9, 6.28});
  torch::optim::AdamW optimizer(layer->parameters());
  // One step so that every parameter has moments.
  layer->forward(torch::randn({2, 20, 4})).pow(2).sum().backward();
  optimizer.step();
  auto moments = [&](const torch::Tensor& p) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*optimizer.state().at(optimizer_key(p)));
    return std::make_pair(s.exp_avg().clone(), s.step());
  };
  const torch::Tensor old_b = layer->B_re.detach().clone(), old_c = layer->C_im.detach().clone();
  const auto [b_avg, b_step] = moments(layer->B_re);
  const auto [c_avg, c_step] = moments(layer->C_im);
  config::ReductionConfig r = tolerance_reduction(0.5, config::Selection::kRandom);
  r.optimizer_state = config::OptimizerStatePolicy::kSlice;
  const auto event = reduce_block(layer, optimizer, r, 0, 1);
  ASSERT_TRUE(event.has_value());
  // Which modes were kept: the rows of B_re that survived.
  for (int64_t i = 0; i < layer->state_dim(); ++i) {
    int64_t from = -1;
    for (int64_t j = 0; j < 32; ++j)
      if (torch::equal(layer->B_re[i], old_b[j])) from = j;
    ASSERT_GE(from, 0);
    EXPECT_TRUE(torch::equal(layer->C_im.select(1, i), old_c.select(1, from)));
    EXPECT_TRUE(torch::equal(moments(layer->B_re).first[i], b_avg[from]));
    EXPECT_TRUE(torch::equal(moments(layer->C_im).first.select(1, i), c_avg.select(1, from)));
  }
  EXPECT_EQ(moments(layer->B_re).second, b_step);
}

// reduce_blocks plans the blocks side by side and applies them in order: the
// same layers, events and optimiser state as reduce_block on each in turn,
// including the random selection's draws from LibTorch's generator.
TEST(BlockReduction, BlocksSideBySideEqualBlocksInTurn) {
  for (auto selection : {config::Selection::kLargest, config::Selection::kRandom}) {
    torch::manual_seed(5);
    std::vector<nn::LruLayer> in_turn, side_by_side;
    for (int n : {36, 60, 90, 130}) {
      in_turn.emplace_back(n, 5, nn::LruInit{0.4, 0.98, 6.28});
      side_by_side.push_back(copy_of(in_turn.back()));
    }
    std::vector<torch::Tensor> first, second;
    for (auto& l : in_turn) for (auto& p : l->parameters()) first.push_back(p);
    for (auto& l : side_by_side) for (auto& p : l->parameters()) second.push_back(p);
    torch::optim::AdamW opt_first(first), opt_second(second);
    config::ReductionConfig r = tolerance_reduction(0.8, selection);
    r.optimizer_state = config::OptimizerStatePolicy::kSlice;

    torch::manual_seed(9);
    std::vector<std::optional<ReductionEvent>> expected;
    for (size_t b = 0; b < in_turn.size(); ++b)
      expected.push_back(reduce_block(in_turn[b], opt_first, r, static_cast<int64_t>(b), 10));
    torch::manual_seed(9);
    const auto events = reduce_blocks(side_by_side, opt_second, r, 10, /*jobs=*/3);

    ASSERT_EQ(events.size(), expected.size());
    int reduced = 0;
    for (size_t b = 0; b < events.size(); ++b) {
      const std::string what = std::string(config::to_string(selection)) + " block " + std::to_string(b);
      ASSERT_EQ(events[b].has_value(), expected[b].has_value()) << what;
      if (!events[b]) continue;
      EXPECT_EQ(events[b]->block, static_cast<int64_t>(b)) << what;
      EXPECT_EQ(events[b]->new_dim, expected[b]->new_dim) << what;
      EXPECT_LT(events[b]->new_dim, events[b]->old_dim) << what;
      ++reduced;
      ASSERT_EQ(events[b]->hsv.size(), expected[b]->hsv.size()) << what;
      for (size_t i = 0; i < events[b]->hsv.size(); ++i)
        EXPECT_NEAR(events[b]->hsv[i], expected[b]->hsv[i], 1e-12 * expected[b]->hsv[0]) << what;
      if (selection == config::Selection::kLargest) {
        EXPECT_NEAR(events[b]->kept_energy, expected[b]->kept_energy, 1e-12 * expected[b]->kept_energy) << what;
        EXPECT_NEAR(events[b]->hinf_error, expected[b]->hinf_error, 1e-9 * expected[b]->hinf_bound) << what;
      }
      auto a = in_turn[b]->named_parameters(), c = side_by_side[b]->named_parameters();
      for (const auto& item : a)
        EXPECT_TRUE(torch::allclose(item.value(), c[item.key()], 1e-5, 1e-6)) << what << " " << item.key();
      // The optimiser's moments of the new tensors (sliced) sit under the new parameters.
      for (const auto& item : a) {
        const auto found_a = opt_first.state().find(optimizer_key(item.value()));
        const auto found_c = opt_second.state().find(optimizer_key(c[item.key()]));
        ASSERT_EQ(found_a == opt_first.state().end(), found_c == opt_second.state().end()) << what << " " << item.key();
      }
    }
    EXPECT_GE(reduced, 3) << config::to_string(selection);
  }
}

config::Config digits_config() {
  config::Config c = config::load_config(kConfigPath);
  c.training.num_steps = 200;
  c.training.eval_steps = 100;
  c.reduction.red_start = 0;
  c.reduction.red_end = 150;
  c.reduction.red_interval = 50;
  return c;
}

bool all_finite(nn::LruModel& model) {
  for (const auto& p : model->parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

// The attempt steps: every red_interval-th step whose 0-based index is in
// [red_start, red_end); first_attempt_step is the first one on that grid
// (the CLI warns when it lies past red_end or num_steps).
TEST(ReductionSchedule, AttemptStepsAndTheFirstOne) {
  config::Config c;
  c.reduction.mode = config::ReductionMode::kTolerance;
  c.reduction.red_start = 0;
  c.reduction.red_end = 200;
  c.reduction.red_interval = 50;
  std::vector<int64_t> attempts;
  for (int64_t steps = 1; steps <= 400; ++steps)
    if (ReductionPolicy(c).is_attempt_step(steps)) attempts.push_back(steps);
  EXPECT_EQ(attempts, (std::vector<int64_t>{50, 100, 150, 200}));
  EXPECT_EQ(ReductionPolicy(c).first_attempt_step(), 50);
  c.reduction.red_start = 50;  // the step with index 49 (steps_done 50) is before the window
  EXPECT_EQ(ReductionPolicy(c).first_attempt_step(), 100);
  EXPECT_FALSE(ReductionPolicy(c).is_attempt_step(50));
  c.reduction.red_start = 49;
  EXPECT_EQ(ReductionPolicy(c).first_attempt_step(), 50);
  EXPECT_TRUE(ReductionPolicy(c).is_attempt_step(50));
  c.reduction.red_start = 190;
  c.reduction.red_end = 195;  // the grid's next step, 200 (index 199), is past the window
  EXPECT_EQ(ReductionPolicy(c).first_attempt_step(), 200);
  EXPECT_FALSE(ReductionPolicy(c).is_attempt_step(200));
  c.reduction.mode = config::ReductionMode::kNone;
  EXPECT_EQ(ReductionPolicy(c).first_attempt_step(), 0);
}

TEST(InTrainingReduction, TrainingStaysFiniteAcrossReductionsForEverySelectionAndPolicy) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  const data::Splits splits = data::load_dataset("digits", "", 0);
  configure_runtime(1);
  for (auto selection : {config::Selection::kLargest, config::Selection::kSmallest, config::Selection::kRandom}) {
    for (auto policy : {config::OptimizerStatePolicy::kReset, config::OptimizerStatePolicy::kSlice}) {
      config::Config c = digits_config();
      c.reduction.mode = config::ReductionMode::kTolerance;
      c.reduction.tol = 0.9;
      c.reduction.selection = selection;
      c.reduction.optimizer_state = policy;
      TrainerOptions options;
      options.log = nullptr;
      bool finite = true;
      options.after_step = [&](int64_t, Trainer& t) { finite = finite && all_finite(t.model()); };
      Trainer trainer(c, splits, options);
      const RunTotals totals = trainer.run();
      const std::string name = std::string(config::to_string(selection)) + "/" + std::string(config::to_string(policy));
      EXPECT_TRUE(finite) << name;
      ASSERT_FALSE(trainer.history().reductions.empty()) << name;
      EXPECT_LT(totals.final_state_dims[0], 64) << name;
      EXPECT_EQ(trainer.history().reductions.front().step, 50) << name;
      for (const EvalRecord& e : trainer.history().evals) EXPECT_TRUE(std::isfinite(e.loss)) << name;
      std::printf("%s: final N %lld, test accuracy %.4f\n", name.c_str(),
                  static_cast<long long>(totals.final_state_dims[0]), totals.final_test_accuracy);
      // Keeping the strongest (or random) states still learns (chance is 0.1);
      // keeping the weakest balanced states is the ablation that fails.
      if (selection != config::Selection::kSmallest) {
        EXPECT_GT(totals.final_test_accuracy, 0.5) << name;
      }
    }
  }
}

// Every parameter and AdamW moment of `model` equals the snapshot's.
void expect_matches_snapshot(Trainer& trainer, const CheckpointContents& snapshot) {
  const CheckpointContents now = trainer.snapshot();
  ASSERT_EQ(now.model_tensors.size(), snapshot.model_tensors.size());
  for (size_t i = 0; i < now.model_tensors.size(); ++i) {
    EXPECT_EQ(now.model_tensors[i].first, snapshot.model_tensors[i].first);
    EXPECT_TRUE(torch::equal(now.model_tensors[i].second, snapshot.model_tensors[i].second))
        << now.model_tensors[i].first;
  }
  size_t compared = 0;
  for (const auto& [name, tensor] : snapshot.optimizer_tensors) {
    if (name == "rng/cpu") continue;
    bool found = false;
    for (const auto& [now_name, now_tensor] : now.optimizer_tensors)
      if (now_name == name) {
        found = true;
        EXPECT_TRUE(torch::equal(now_tensor, tensor)) << name;
        ++compared;
      }
    EXPECT_TRUE(found) << name;
  }
  EXPECT_GT(compared, 10u);
}

TEST(InTrainingReduction, PragmaticRollbackRestoresTheExactPreReductionState) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  const data::Splits splits = data::load_dataset("digits", "", 0);
  configure_runtime(1);
  config::Config c = config::load_config(kConfigPath);
  c.training.num_steps = 500;
  c.reduction.mode = config::ReductionMode::kPragmatic;
  c.reduction.reduction_fraction = 0.99;  // 64 -> 1 state: accuracy collapses
  c.reduction.performance_tolerance = 0.02;
  c.reduction.red_start = 299;           // one attempt, after step 300; checked after step 400
  c.reduction.red_end = 350;
  c.reduction.red_interval = 100;
  TrainerOptions options;
  options.log = nullptr;
  std::optional<CheckpointContents> before;
  std::vector<int64_t> dims_after_check;
  bool compared = false;
  options.after_step = [&](int64_t step, Trainer& t) {
    if (step == 300) {
      ASSERT_TRUE(t.reduction_policy()->pending_snapshot().has_value());
      before = *t.reduction_policy()->pending_snapshot();
      EXPECT_EQ(t.model()->state_dims(), std::vector<int64_t>{1});
    }
    if (step == 400) {
      dims_after_check = t.model()->state_dims();
      ASSERT_TRUE(before.has_value());
      expect_matches_snapshot(t, *before);
      compared = true;
    }
  };
  Trainer trainer(c, splits, options);
  trainer.run();
  const RunHistory& h = trainer.history();
  ASSERT_EQ(h.reductions.size(), 1u);
  EXPECT_TRUE(h.reductions[0].rolled_back);
  EXPECT_TRUE(h.pragmatic.stopped);
  EXPECT_EQ(h.pragmatic.rollback_step, 400);
  EXPECT_EQ(dims_after_check, std::vector<int64_t>{64});
  EXPECT_TRUE(compared);
}

// The check of the last reduction comes at the end of training when its
// red_interval steps would run past it: the final model is never an
// unchecked reduction, and final/ carries no pending rollback.
TEST(InTrainingReduction, PragmaticChecksTheLastReductionAtTheEndOfTraining) {
  if (!digits_available()) GTEST_SKIP() << "scikit-learn's digits not installed (python3-sklearn)";
  const data::Splits splits = data::load_dataset("digits", "", 0);
  configure_runtime(1);
  for (const int64_t num_steps : {100, 80}) {  // reductions after steps 40 and 80: checked at 80 and 100; at 80 at once
    config::Config c = config::load_config(kConfigPath);
    c.training.num_steps = num_steps;
    c.training.eval_steps = 20;
    c.reduction.mode = config::ReductionMode::kPragmatic;
    c.reduction.reduction_fraction = 0.3;
    c.reduction.performance_tolerance = 1.0;  // never rolls back: the check only ends the pending state
    c.reduction.red_start = 0;
    c.reduction.red_end = num_steps;
    c.reduction.red_interval = 40;
    TrainerOptions options;
    options.log = nullptr;
    std::vector<int64_t> pending_at;  // steps after which a snapshot is pending
    options.after_step = [&](int64_t step, Trainer& t) {
      if (t.reduction_policy()->pending_snapshot()) pending_at.push_back(step);
    };
    Trainer trainer(c, splits, options);
    trainer.run();
    const RunHistory& h = trainer.history();
    ASSERT_EQ(h.reductions.size(), 2u) << num_steps;
    EXPECT_EQ(h.pragmatic.check_step, -1) << num_steps;
    EXPECT_FALSE(trainer.reduction_policy()->pending_snapshot().has_value()) << num_steps;
    ASSERT_FALSE(pending_at.empty());
    EXPECT_LT(pending_at.back(), num_steps) << num_steps;
  }
}

}  // namespace
}  // namespace compressm::training
