// `compressm train --config FILE [--set k=v ...] --out DIR [--resume DIR]`:
// trains an LRU model and keeps a run folder (src/training/trainer.h).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iterator>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "config/config.h"
#include "data/dataset.h"
#include "io/atomic_file.h"
#include "training/checkpoint.h"
#include "training/reduction_policy.h"
#include "training/runtime_setup.h"
#include "training/trained_model.h"
#include "training/trainer.h"

namespace compressm::cli {
namespace fs = std::filesystem;

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  return fs::weakly_canonical(a) == fs::weakly_canonical(b);
}

// Config keys a resumed run may change: where the data is read from, how
// often checkpoints are written, and the CPU threads (the run's model then
// differs in the last bits from an uninterrupted one: sums split otherwise).
struct RuntimeKey {
  const char* name;
  void (*take)(config::Config& run, const config::Config& wanted);  // copies this key's value
};
constexpr RuntimeKey kRuntimeKeys[] = {
    {"threads", [](config::Config& run, const config::Config& wanted) { run.threads = wanted.threads; }},
    {"data_dir", [](config::Config& run, const config::Config& wanted) { run.data_dir = wanted.data_dir; }},
    {"checkpoint_every",
     [](config::Config& run, const config::Config& wanted) { run.checkpoint_every = wanted.checkpoint_every; }},
};

bool is_runtime_key(const std::string& key) {
  return std::any_of(std::begin(kRuntimeKeys), std::end(kRuntimeKeys),
                     [&](const RuntimeKey& runtime) { return key == runtime.name; });
}

// "threads, data_dir and checkpoint_every"
std::string runtime_key_list() {
  std::string list;
  const std::size_t count = std::size(kRuntimeKeys);
  for (std::size_t i = 0; i < count; ++i)
    list += std::string(i == 0 ? "" : i + 1 == count ? " and " : ", ") + kRuntimeKeys[i].name;
  return list;
}

// "key (was A, now B)" for every leaf of `now` whose value differs in `was`.
void differing_keys(const nlohmann::ordered_json& was, const nlohmann::ordered_json& now, const std::string& prefix,
                    std::vector<std::pair<std::string, std::string>>& out) {
  for (auto it = now.begin(); it != now.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const auto old = was.find(it.key());
    if (old != was.end() && old->is_object() && it->is_object())
      differing_keys(*old, *it, key, out);
    else if (old == was.end() || *old != *it)
      out.emplace_back(key, key + " (was " + (old == was.end() ? "unset" : old->dump()) + ", now " + it->dump() + ")");
  }
}

// "a (was 1, now 2), b (...)" for the keys that differ between two configs,
// the runtime keys left out.
std::string differing_non_runtime_keys(const config::Config& was, const config::Config& now) {
  std::vector<std::pair<std::string, std::string>> changed;
  differing_keys(config::to_json(was), config::to_json(now), "", changed);
  std::string refused;
  for (const auto& [key, text] : changed)
    if (!is_runtime_key(key)) refused += (refused.empty() ? "" : ", ") + text;
  return refused;
}

// The effective config of a run: --config + --set, or (when resuming without
// --config) the run's own config.yaml + --set; a resumed run must keep the
// config it started with, or its metrics would not continue the same run.
// Only kRuntimeKeys may change (for this invocation; config.yaml keeps the
// run's values).
config::Config run_config_for(const TrainOptions& options, std::vector<std::string>& notes) {
  if (options.resume_dir.empty()) {
    if (options.config_path.empty()) throw UsageError("--config is required (unless --resume is given)");
    config::Config config = config::load_config(options.config_path, options.overrides, &notes);
    // A relative data_dir (or the dataset's default folder, relative for most
    // datasets) is read from the working directory; the run records it
    // absolute, so eval, export and resume read the same data from anywhere.
    if (config.data_dir.empty())
      config.data_dir = data::default_data_dir(std::string(config::to_string(config.dataset)));
    if (fs::path(config.data_dir).is_relative())
      config.data_dir = fs::absolute(config.data_dir).lexically_normal().string();
    return config;
  }
  const fs::path saved_path = fs::path(options.resume_dir) / "config.yaml";
  if (!fs::exists(saved_path)) throw UsageError("--resume " + options.resume_dir + ": not a run folder (no config.yaml)");
  const config::Config saved = config::load_config(saved_path.string());
  const std::string source = options.config_path.empty() ? saved_path.string() : options.config_path;
  const config::Config wanted = config::load_config(source, options.overrides, &notes);
  const std::string refused = differing_non_runtime_keys(saved, wanted);
  if (!refused.empty())
    throw UsageError("--resume " + options.resume_dir + ": the config (" + source + " with --set) differs from " +
                     saved_path.string() + " in " + refused + "; a resumed run keeps its config (only " +
                     runtime_key_list() + " may change)");
  config::Config result = saved;
  for (const RuntimeKey& runtime : kRuntimeKeys) runtime.take(result, wanted);
  return result;
}

// An exclusive lock on the run folder for the life of the process (flock on
// the folder itself: no file is added, and the kernel drops it when the
// process ends, however it ends). A second `train` on the same folder, e.g.
// a --resume while the run is still going, is refused.
class RunFolderLock {
 public:
  RunFolderLock(const fs::path& folder, const std::string& flag) {
    fd_ = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) throw UsageError(flag + " " + folder.string() + ": cannot open the folder");
    // Only a held lock refuses; a file system without flock (EINVAL,
    // ENOLCK, ENOSYS) trains unlocked, as before.
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      ::close(fd_);
      throw UsageError(flag + " " + folder.string() + ": another compressm process is training in this folder");
    }
  }
  ~RunFolderLock() { ::close(fd_); }
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// SIGINT / SIGTERM while training: the loop stops after the step in flight
// and writes a checkpoint (TrainerOptions::stop). One request may arrive as
// several signals (Ctrl-C reaches every process of the terminal's group, and
// `timeout` sends its signal to the child and then to its group): repeats
// within kRepeatWindowNs of the first count as the same request; a signal
// after that ends the process at once (the default action).
std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};
std::atomic<int64_t> first_signal_ns{0};
constexpr int64_t kRepeatWindowNs = 2'000'000'000;
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
                  std::atomic<int64_t>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

extern "C" void request_stop(int signal) {
  const int saved_errno = errno;
  const int64_t now = monotonic_ns();
  int64_t first = 0;
  if (first_signal_ns.compare_exchange_strong(first, now)) {
    stop_signal.store(signal);
    stop_requested.store(true);
    static const char message[] =
        "\ncompressm: stopping after this step to write a checkpoint (again to quit at once)\n";
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, message, sizeof message - 1);
  } else if (now - first > kRepeatWindowNs) {
    ::signal(signal, SIG_DFL);
    ::raise(signal);
  }
  errno = saved_errno;
}

void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Creates the new run folder; a path that cannot be a folder is the flag's fault.
void create_run_folder(const fs::path& folder, const std::string& flag) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw UsageError(flag + " " + folder.string() + ": cannot create the folder (" + ec.message() + ")");
}

// A reducing config whose reduction steps all fall after the last training
// step (e.g. a shortened run: training.num_steps cut, red_end kept) trains
// unreduced; says so, or "" when some reduction step is in the run.
std::string reduction_window_unused(const config::Config& config) {
  const config::ReductionConfig& r = config.reduction;
  const training::ReductionPolicy policy(config);
  const int64_t first = policy.first_attempt_step();
  if (first == 0 || (policy.is_attempt_step(first) && first <= config.training.num_steps)) return "";
  return "reduction.mode " + std::string(config::to_string(r.mode)) + ", but no reduction step falls in the run: " +
         "the first would be step " + std::to_string(first) + " (red_start " + std::to_string(r.red_start) +
         ", red_interval " + std::to_string(r.red_interval) + ", red_end " + std::to_string(r.red_end) +
         ") and training.num_steps is " + std::to_string(config.training.num_steps) + ": the model stays unreduced";
}

// A checkpoint copied in from another run (the same shapes, another lr or
// seed) would go on under this run's config without a word: the config it
// was written with (its own config.yaml) must agree but for the runtime keys.
void check_checkpoint_config(const training::CheckpointContents& contents, const fs::path& checkpoint,
                             const config::Config& run_config) {
  const fs::path source = checkpoint / "config.yaml";
  config::Config written;
  try {
    written = config::parse_config(contents.config_yaml, source.string());
  } catch (const config::ConfigError& e) {
    throw training::CheckpointError(e.what());
  }
  if (const std::string differs = differing_non_runtime_keys(written, run_config); !differs.empty())
    throw training::CheckpointError(source.string() + ": the checkpoint was written with another config than the " +
                                    "run's, in " + differs + " (a checkpoint of another run?)");
}

// Restores `checkpoint`; a damaged one names the checkpoint before it, the
// one to fall back on (the damaged folder is the user's to move aside).
// The data goes on with the input statistics the run started with (another
// data_dir's training files give other ones); the trainer reads `splits` only
// once it runs.
void restore_or_explain(training::Trainer& trainer, data::Splits& splits, const fs::path& checkpoint,
                        const fs::path& run_dir, const config::Config& run_config) {
  try {
    const training::CheckpointContents contents = training::read_checkpoint(checkpoint);  // manifest checked
    check_checkpoint_config(contents, checkpoint, run_config);
    training::apply_saved_input_scaling(contents, checkpoint, {&splits.train, &splits.val, &splits.test});
    trainer.restore(contents, checkpoint);
  } catch (const training::CheckpointError& e) {
    const fs::path before = training::checkpoint_before(run_dir, checkpoint);
    if (before.empty()) throw;
    throw training::CheckpointError(std::string(e.what()) + "; the checkpoint before it is " + before.string() +
                                    ": move " + checkpoint.string() + " aside to resume from there");
  }
}

data::Splits load_splits(const config::Config& config) {
  try {
    return data::load_dataset(std::string(config::to_string(config.dataset)), config.data_dir,
                              static_cast<uint64_t>(config.seed));
  } catch (const data::DataError& e) {
    throw io::InputError(e.what());
  }
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainOptions& options) {
  CLI::App* command = app.add_subcommand("train", "Train an LRU model; keeps a run folder with checkpoints");
  command->add_option("--config", options.config_path, "YAML config file (docs/design.md section 3)");
  command->add_option("--set", options.overrides, kSetHelp)
      ->allow_extra_args(false);
  command->add_option("--out", options.out_dir, "Run folder to create (must be empty or absent)");
  command->add_option("--resume", options.resume_dir,
                      "Continue the run in this folder from its latest checkpoint");
  return command;
}

int run_train(const TrainOptions& options) {
  if (options.out_dir.empty() && options.resume_dir.empty()) throw UsageError("--out is required");
  if (!options.out_dir.empty() && !options.resume_dir.empty() && !same_folder(options.out_dir, options.resume_dir))
    throw UsageError("--out and --resume name different folders (a run resumes in its own folder)");
  std::vector<std::string> notes;
  const config::Config config = run_config_for(options, notes);
  for (const std::string& note : notes) report_warning(note);
  try {
    training::training_device(config);  // device: cuda without a GPU fails here, before any file is made
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (const std::string unused = reduction_window_unused(config); !unused.empty()) report_warning(unused);
  if (config.training.precision == config::Precision::kTf32)
    report_warning("training.precision tf32 only changes CUDA GEMMs; on the CPU this trains in fp32");
  training::configure_runtime(config.threads);

  const bool resuming = !options.resume_dir.empty();
  const fs::path run_dir = resuming ? fs::path(options.resume_dir) : fs::path(options.out_dir);
  auto refuse_non_empty_out = [&] {
    if (fs::exists(run_dir) && !fs::is_empty(run_dir))
      throw UsageError("--out " + options.out_dir + ": exists and is not empty (use --resume to continue a run)");
  };
  if (!resuming) {
    refuse_output_in_checkpoint("--out", options.out_dir);
    if (fs::exists(run_dir) && !fs::is_directory(run_dir))
      throw UsageError("--out " + options.out_dir + ": exists and is not a folder");
    refuse_non_empty_out();
  }
  // The data first: a missing dataset leaves no new folder behind.
  data::Splits splits = load_splits(config);
  if (splits.train.count() < config.training.batch_size)
    throw UsageError((options.config_path.empty() ? "the run's config" : options.config_path) +
                     ": training.batch_size " + std::to_string(config.training.batch_size) + " is larger than the " +
                     std::to_string(splits.train.count()) + " training examples of " +
                     std::string(config::to_string(config.dataset)));
  if (!resuming) create_run_folder(run_dir, "--out");
  const RunFolderLock lock(run_dir, resuming ? "--resume" : "--out");
  if (!resuming) refuse_non_empty_out();  // another run may have taken the folder between the check above and the lock
  fs::path resume_from;
  if (resuming) {
    // A run stopped before its first checkpoint (killed, or the machine went
    // down) starts over; a finished run whose checkpoints are gone does not.
    if (!training::has_checkpoint(run_dir) && !fs::exists(run_dir / "metrics.json"))
      std::cerr << "compressm: " << run_dir.string() << " has no checkpoint yet: starting the run over from step 0\n";
    else
      resume_from = training::latest_checkpoint(run_dir);
  }

  training::TrainerOptions trainer_options;
  trainer_options.run_dir = run_dir;
  trainer_options.log = &std::cerr;
  trainer_options.log_is_terminal = ::isatty(STDERR_FILENO) != 0;
  trainer_options.stop = &stop_requested;
  training::Trainer trainer(config, splits, trainer_options);
  if (!resume_from.empty()) {
    restore_or_explain(trainer, splits, resume_from, run_dir, config);
    std::cerr << "compressm: resuming " << run_dir.string() << " at step " << trainer.steps_done() << " ("
              << resume_from.filename().string() << ")\n";
    if (trainer.steps_done() >= config.training.num_steps && resume_from == training::final_folder(run_dir)) {
      // A run that ended between final/ and metrics.json (killed, disk full):
      // final/state.json keeps metrics.json's text to write it again.
      const fs::path metrics = run_dir / "metrics.json";
      if (!fs::exists(metrics)) {
        if (trainer.rewrite_final_metrics())
          std::cerr << "compressm: wrote " << metrics.string() << " from final/ (the run had ended before it)\n";
        else
          report_warning(metrics.string() + " is missing and final/ keeps no copy of it (written by an older " +
                         "version): compressm eval --checkpoint " + run_dir.string() + " gives the test accuracy");
      }
      std::cerr << "compressm: the run is already finished\n";
      return kExitSuccess;
    }
  } else if (!resuming) {
    io::write_file_atomically(run_dir / "config.yaml", config::to_yaml(config));
  }
  stop_on_signals();
  const training::RunTotals totals = trainer.run();
  if (totals.interrupted_at >= 0) {
    std::cerr << "compressm: stopped at step " << totals.interrupted_at << " of " << config.training.num_steps
              << "; checkpoint " << training::checkpoint_folder(run_dir, totals.interrupted_at).string()
              << "; continue with: compressm train --resume " << run_dir.string() << "\n";
    return 128 + stop_signal.load();
  }
  if (stop_requested.load())
    std::cerr << "compressm: the signal came after the last training step: the run finished normally\n";
  return kExitSuccess;
}

}  // namespace compressm::cli
