// Range and cross-key checks of a Config. Each failure blames the source of the
// offending key (file line or --set flag); a cross-key failure blames whichever
// of the two keys was set last.
#include <string>

#include "config/config.h"
#include "config/config_schema.h"
#include "config/config_values.h"

namespace compressm::config {
namespace detail {
namespace {

constexpr double kTwoPi = 6.283185307179586;

std::string shown(double value) { return format_double(value); }
std::string shown(std::int64_t value) { return std::to_string(value); }
std::string shown(int value) { return std::to_string(value); }

class Checker {
 public:
  explicit Checker(const Origins& origins) : origins_(origins) {}

  template <typename T>
  void at_least(const std::string& path, T value, T minimum) {
    if (!(value >= minimum)) fail(path, "must be >= " + shown(minimum) + ", got " + shown(value));
  }
  template <typename T>
  void at_most(const std::string& path, T value, T maximum) {
    if (!(value <= maximum)) fail(path, "must be <= " + shown(maximum) + ", got " + shown(value));
  }
  void keepable_string(const std::string& path, const std::string& value) {
    if (const auto problem = string_problem(value)) fail(path, *problem);
  }
  void positive(const std::string& path, double value) {
    if (!(value > 0.0)) fail(path, "must be > 0, got " + shown(value));
  }
  // lower < value < upper, or with `closed` ends: "[0, 1)" etc.
  void in_range(const std::string& path, double value, double lower, double upper,
                const char* interval) {
    const std::string text(interval);
    const bool low_ok = text.front() == '[' ? value >= lower : value > lower;
    const bool high_ok = text.back() == ']' ? value <= upper : value < upper;
    if (!(low_ok && high_ok)) fail(path, "must be in " + text + ", got " + shown(value));
  }
  // Requires value(a) < value(b) (or <= when `allow_equal`).
  template <typename T>
  void ordered(const std::string& a, T a_value, const std::string& b, T b_value, bool allow_equal) {
    if (allow_equal ? a_value <= b_value : a_value < b_value) return;
    const char* relation_a = allow_equal ? "<= " : "less than ";
    const char* relation_b = allow_equal ? ">= " : "greater than ";
    if (origins_.of(a).order >= origins_.of(b).order) {
      fail(a, std::string("must be ") + relation_a + b + " (" + shown(b_value) + "), got " +
                  shown(a_value));
    }
    fail(b, std::string("must be ") + relation_b + a + " (" + shown(a_value) + "), got " +
                shown(b_value));
  }

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& problem) const {
    detail::fail(origins_.of(path), path, problem);
  }
  const Origins& origins_;
};

}  // namespace

void validate(const Config& c, const Origins& origins) {
  Checker check(origins);
  check.keepable_string("data_dir", c.data_dir);
  check.at_least("seed", c.seed, std::int64_t{0});
  check.at_least("threads", c.threads, 0);
  check.at_most("threads", c.threads, 4096);
  check.at_least("checkpoint_every", c.checkpoint_every, std::int64_t{0});

  const ModelConfig& m = c.model;
  check.at_least("model.num_blocks", m.num_blocks, 1);
  check.at_least("model.state_dim", m.state_dim, 1);
  check.at_least("model.hidden_dim", m.hidden_dim, 1);
  // |lambda| < 1 keeps every LRU stable; r_min = 0 is allowed (|lambda|^2 ~ U[0, r_max^2]).
  check.in_range("model.r_min", m.r_min, 0.0, 1.0, "[0, 1)");
  check.in_range("model.r_max", m.r_max, 0.0, 1.0, "(0, 1)");
  check.ordered("model.r_min", m.r_min, "model.r_max", m.r_max, false);
  check.in_range("model.drop_rate", m.drop_rate, 0.0, 1.0, "[0, 1)");
  check.in_range("model.max_phase", m.max_phase, 0.0, kTwoPi, "(0, 2*pi]");

  const TrainingConfig& t = c.training;
  check.at_least("training.num_steps", t.num_steps, std::int64_t{1});
  check.at_least("training.batch_size", t.batch_size, 1);
  check.positive("training.lr", t.lr);
  check.at_least("training.weight_decay", t.weight_decay, 0.0);
  check.positive("training.ssm_lr_factor", t.ssm_lr_factor);
  check.at_least("training.eval_steps", t.eval_steps, std::int64_t{1});

  const ReductionConfig& r = c.reduction;
  // tol is the fraction of HSV energy kept; tol = 1 keeps every state with energy.
  check.in_range("reduction.tol", r.tol, 0.0, 1.0, "(0, 1]");
  check.at_least("reduction.red_start", r.red_start, std::int64_t{0});
  check.ordered("reduction.red_start", r.red_start, "reduction.red_end", r.red_end, true);
  check.at_least("reduction.red_interval", r.red_interval, std::int64_t{1});
  check.at_least("reduction.hsv_interval", r.hsv_interval, std::int64_t{0});
  check.in_range("reduction.reduction_fraction", r.reduction_fraction, 0.0, 1.0, "(0, 1)");
  check.in_range("reduction.performance_tolerance", r.performance_tolerance, 0.0, 1.0, "[0, 1]");
}

}  // namespace detail

void validate(const Config& config, const std::string& source) {
  detail::validate(config, detail::Origins(source));
}

}  // namespace compressm::config
