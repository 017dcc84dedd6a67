#include "training/block_reduction.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include "linalg/concurrent.h"
#include "linalg/frequency_response.h"
#include "linalg/hankel.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "linalg/stopwatch.h"
#include "training/checkpoint.h"

namespace compressm::training {
namespace {

constexpr const char* kStateTensors[] = {"nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im"};

// The H-inf error is measured on a grid of ~2048 + 3 (N + r) frequencies, each
// costing an {H, N} x {N, H} product and a small eigenvalue problem; above this
// much work (~0.2 s: an sMNIST block, 5.9e7, took 65 ms) it is left out (NaN):
// e.g. sCIFAR's H = 512 blocks.
constexpr double kMaxHinfWork = 2e8;

std::vector<double> to_std(const linalg::VectorXd& v) { return {v.data(), v.data() + v.size()}; }

linalg::RankRule rank_rule(const RankChoice& choice) {
  return (choice.by_energy ? linalg::RankRule::energy(choice.energy_kept) : linalg::RankRule::fixed(choice.rank))
      .with_gate();
}

// Keeps only the diagonal modes `modes` of `system`.
linalg::DiagonalSystem select_modes(const linalg::DiagonalSystem& system, const std::vector<int64_t>& modes) {
  linalg::DiagonalSystem out;
  const auto r = static_cast<Eigen::Index>(modes.size());
  out.lambda.resize(r);
  out.B.resize(r, system.B.cols());
  out.C.resize(system.C.rows(), r);
  for (Eigen::Index i = 0; i < r; ++i) {
    out.lambda[i] = system.lambda[modes[i]];
    out.B.row(i) = system.B.row(modes[i]);
    out.C.col(i) = system.C.col(modes[i]);
  }
  out.D = system.D;
  return out;
}

// AdamW state of the layer's state tensors, by name, before they are replaced.
using SavedStates = std::map<std::string, torch::optim::AdamWParamState>;

SavedStates take_states(nn::LruLayer& layer, torch::optim::AdamW& optimizer) {
  SavedStates saved;
  auto& states = optimizer.state();
  for (const auto& item : layer->named_parameters(false)) {
    const auto found = states.find(optimizer_key(item.value()));
    if (found == states.end() || item.key() == "D") continue;
    saved[item.key()] = static_cast<const torch::optim::AdamWParamState&>(*found->second);
    states.erase(found);
  }
  return saved;
}

// slice: the moments of kept state `kept[i]` move to state i (the reference's
// rule; exact for random selection, where modes keep their basis). Vectors
// and B are indexed by state along dim 0, C along dim 1.
void carry_states(nn::LruLayer& layer, torch::optim::AdamW& optimizer, const SavedStates& saved,
                  const torch::Tensor& kept) {
  auto& states = optimizer.state();
  for (const auto& item : layer->named_parameters(false)) {
    const auto found = saved.find(item.key());
    if (found == saved.end()) continue;
    const int64_t dim = (item.key() == "C_re" || item.key() == "C_im") ? 1 : 0;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(found->second.step());
    const torch::Tensor kept_here = kept.to(found->second.exp_avg().device());
    state->exp_avg(found->second.exp_avg().index_select(dim, kept_here).contiguous());
    state->exp_avg_sq(found->second.exp_avg_sq().index_select(dim, kept_here).contiguous());
    states[optimizer_key(item.value())] = std::move(state);
  }
}

}  // namespace

RankChoice rank_choice(const config::ReductionConfig& reduction, int64_t state_dim) {
  RankChoice choice;
  switch (reduction.mode) {
    case config::ReductionMode::kTolerance:
      choice.energy_kept = reduction.tol;
      return choice;
    case config::ReductionMode::kFixed:
    case config::ReductionMode::kPragmatic:
      choice.by_energy = false;
      choice.rank = linalg::rank_for_fraction(state_dim, reduction.reduction_fraction);
      return choice;
    case config::ReductionMode::kNone: break;
  }
  throw std::invalid_argument("rank_choice: reduction mode none");
}

LayerCut balanced_cut(linalg::DiagonalSystem full, const linalg::RankRule& rule, linalg::KeptStates kept) {
  LayerCut c;
  c.full = std::move(full);
  c.cut = linalg::reduce_diagonal_system(c.full, rule, linalg::default_backend(), kept);
  if (c.cut.rank >= c.full.state_dim()) {  // kept whole; a guard on the HSVs (ill_conditioned) is still news
    for (const auto& g : c.cut.guards) c.guards.push_back(g.guard + ": " + g.detail);
    return c;
  }
  std::vector<linalg::GuardEvent> guards = c.cut.guards;
  c.parameters = linalg::system_to_lru(c.cut.reduced, &guards);
  c.reduced = linalg::lru_to_system(c.parameters);
  for (const auto& g : guards) c.guards.push_back(g.guard + ": " + g.detail);
  return c;
}

std::vector<linalg::DiagonalSystem> layer_systems(const std::vector<nn::LruLayer>& layers) {
  std::vector<linalg::DiagonalSystem> systems;
  systems.reserve(layers.size());
  for (const nn::LruLayer& layer : layers) systems.push_back(layer->to_system());
  return systems;
}

namespace {

// ||G - G_r||_inf on the frequency grid into `into`'s hinf_error,
// hinf_measured and hinf_ms (a BlockPlan or a ReductionEvent). Not measured
// (NaN, false) when that would cost more than kMaxHinfWork (the grid grows
// with N, each point costs ~N H^2).
template <class Record>
void measure_hinf_error(const linalg::DiagonalSystem& full, const linalg::DiagonalSystem& now, Record& into) {
  linalg::Stopwatch watch;
  const double n = static_cast<double>(full.state_dim()), h = static_cast<double>(full.B.cols());
  into.hinf_measured = (2048.0 + 6.0 * n) * n * h * h <= kMaxHinfWork;
  into.hinf_error = into.hinf_measured ? linalg::hinf_error(full, now) : std::numeric_limits<double>::quiet_NaN();
  into.hinf_ms = watch.lap_ms();
}

}  // namespace

BlockPlan plan_block_reduction(linalg::DiagonalSystem full, const config::ReductionConfig& reduction) {
  linalg::Stopwatch watch;
  BlockPlan plan;
  const int64_t n = full.state_dim();
  plan.rule = rank_rule(rank_choice(reduction, n));
  if (reduction.selection == config::Selection::kRandom) {
    plan.hsv = linalg::hankel_singular_values(full);
    plan.full = std::move(full);
  } else {
    const auto kept = reduction.selection == config::Selection::kSmallest ? linalg::KeptStates::kSmallest
                                                                          : linalg::KeptStates::kLargest;
    plan.cut = balanced_cut(std::move(full), plan.rule, kept);
    if (plan.cut->cut.rank < n) measure_hinf_error(plan.cut->full, plan.cut->reduced, plan);
  }
  plan.plan_ms = watch.lap_ms() - plan.hinf_ms;
  return plan;
}

std::optional<ReductionEvent> apply_block_reduction(BlockPlan plan, nn::LruLayer& layer,
                                                    torch::optim::AdamW& optimizer,
                                                    const config::ReductionConfig& reduction, int64_t block,
                                                    int64_t steps_done) {
  linalg::Stopwatch watch;
  ReductionEvent event;
  event.step = steps_done;
  event.block = block;
  event.selection = std::string(config::to_string(reduction.selection));
  event.hinf_error = plan.hinf_error;
  event.hinf_measured = plan.hinf_measured;
  event.hinf_ms = plan.hinf_ms;

  if (!plan.cut) {  // random selection: r random diagonal modes, no balancing
    const linalg::DiagonalSystem& full = plan.full;
    const int64_t n = full.state_dim();
    event.old_dim = n;
    const int64_t r = linalg::select_rank(plan.rule, plan.hsv);
    if (r >= n || !linalg::passes_reduction_gate(r, n)) return std::nullopt;
    const torch::Tensor kept = std::get<0>(torch::randperm(n, torch::kLong).slice(0, 0, r).sort());
    const std::vector<int64_t> modes(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + r);
    const linalg::DiagonalSystem now = select_modes(full, modes);
    event.hsv = to_std(plan.hsv);
    event.kept_energy = event.discarded_energy = event.hinf_bound = std::numeric_limits<double>::quiet_NaN();
    const SavedStates saved = take_states(layer, optimizer);
    layer->keep_modes(kept);
    if (reduction.optimizer_state == config::OptimizerStatePolicy::kSlice) carry_states(layer, optimizer, saved, kept);
    event.new_dim = now.state_dim();
    event.wall_ms = plan.plan_ms + watch.lap_ms();
    measure_hinf_error(full, now, event);
    return event;
  }

  LayerCut& c = *plan.cut;
  const int64_t n = c.full.state_dim();
  event.old_dim = n;
  if (c.cut.rank >= n) return std::nullopt;
  event.hsv = to_std(c.cut.hsv);
  event.kept_energy = c.cut.kept_energy;
  event.discarded_energy = c.cut.discarded_energy;
  event.hinf_bound = c.cut.hinf_bound;
  event.guards = std::move(c.guards);
  event.new_dim = c.reduced.state_dim();
  const SavedStates saved = take_states(layer, optimizer);
  layer->load_parameters(c.parameters);
  if (reduction.optimizer_state == config::OptimizerStatePolicy::kSlice)
    carry_states(layer, optimizer, saved, torch::arange(c.cut.rank, torch::kLong));
  event.wall_ms = plan.plan_ms + watch.lap_ms();
  return event;
}

std::optional<ReductionEvent> reduce_block(nn::LruLayer& layer, torch::optim::AdamW& optimizer,
                                           const config::ReductionConfig& reduction, int64_t block,
                                           int64_t steps_done) {
  return apply_block_reduction(plan_block_reduction(layer->to_system(), reduction), layer, optimizer, reduction,
                               block, steps_done);
}

std::vector<std::optional<ReductionEvent>> reduce_blocks(std::vector<nn::LruLayer>& layers,
                                                         torch::optim::AdamW& optimizer,
                                                         const config::ReductionConfig& reduction,
                                                         int64_t steps_done, int jobs) {
  std::vector<linalg::DiagonalSystem> systems = layer_systems(layers);
  std::vector<std::optional<BlockPlan>> plans(layers.size());
  linalg::run_concurrently(static_cast<Eigen::Index>(layers.size()), jobs, [&](Eigen::Index b) {
    plans[b] = plan_block_reduction(std::move(systems[b]), reduction);
  });
  std::vector<std::optional<ReductionEvent>> events;
  for (size_t b = 0; b < layers.size(); ++b)
    events.push_back(apply_block_reduction(std::move(*plans[b]), layers[b], optimizer, reduction,
                                           static_cast<int64_t>(b), steps_done));
  return events;
}

std::vector<std::vector<double>> blocks_hsv(const std::vector<nn::LruLayer>& layers, int jobs) {
  std::vector<linalg::DiagonalSystem> systems = layer_systems(layers);
  std::vector<std::vector<double>> hsv(layers.size());
  linalg::run_concurrently(static_cast<Eigen::Index>(layers.size()), jobs, [&](Eigen::Index b) {
    hsv[b] = to_std(linalg::hankel_singular_values(systems[b]));
  });
  return hsv;
}

}  // namespace compressm::training
