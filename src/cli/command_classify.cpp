// `compressm classify --model FILE (--dataset NAME [--data-dir D] | --input FILE) [--json]`:
// the LibTorch-free runtime on an exported model (docs/design.md §7). With a dataset,
// the accuracy on its test split (the same figure as `compressm eval` of the
// checkpoint it was exported from); with --input, the class and probabilities
// of one sequence (format: src/runtime/sequence_file.h).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "data/input_scaling_json.h"
#include "runtime/model.h"
#include "runtime/sequence_file.h"

namespace compressm::cli {
namespace {

runtime::Model load_model(const std::string& path) {
  try {
    return runtime::Model::load(path);
  } catch (const runtime::ModelFileError& e) {
    throw io::InputError(e.what());  // names the file and the problem; exit 2
  }
}

std::string metadata_or(const runtime::Model& model, const std::string& key, const std::string& fallback) {
  const auto found = model.weights().metadata.find(key);
  return found == model.weights().metadata.end() ? fallback : found->second;
}

data::Dataset test_split(const runtime::Model& model, const ClassifyOptions& o) {
  // The folder the model was trained from is the default for its own dataset.
  std::string dir = o.data_dir;
  if (dir.empty() && o.dataset == metadata_or(model, "dataset", "")) dir = metadata_or(model, "data_dir", "");
  const std::string seed = metadata_or(model, "seed", "0");
  const bool numeric = !seed.empty() && seed.size() < 19 && seed.find_first_not_of("0123456789") == std::string::npos;
  try {
    data::Dataset test = data::load_test_split(o.dataset, dir, numeric ? std::stoull(seed) : 0);
    // Normalised as in training (scifar), not with the statistics of the training files found now.
    const std::string scaling = metadata_or(model, "input_scaling", "");
    if (!scaling.empty() && o.dataset == metadata_or(model, "dataset", "")) {
      try {
        data::rescale_channels(test, nlohmann::json::parse(scaling, nullptr, /*allow_exceptions=*/false));
      } catch (const data::DataError& e) {
        throw io::InputError(o.model_path + ": __metadata__ input_scaling: " + e.what());
      }
    }
    return test;
  } catch (const data::DataError& e) {
    throw io::InputError(e.what());
  }
}

int classify_dataset(const runtime::Model& model, const ClassifyOptions& o) {
  const std::string trained_on = metadata_or(model, "dataset", "");
  if (!trained_on.empty() && trained_on != o.dataset)
    report_warning(o.model_path + " was trained on " + trained_on + "; scoring it on " + o.dataset);
  const std::string precision = metadata_or(model, "precision", "fp32");
  if (precision != "fp32")
    report_warning(o.model_path + " was trained with precision " + precision + "; this runtime computes in float32, "
                   "so its accuracy can differ slightly from `compressm eval` of the checkpoint");
  const data::Dataset test = test_split(model, o);
  const runtime::Architecture& a = model.architecture();
  if (test.channels != a.input_dim || test.num_classes != a.num_classes)
    throw io::InputError(o.model_path + ": the model takes " + std::to_string(a.input_dim) + " channel(s) and " +
                         std::to_string(a.num_classes) + " classes, dataset " + o.dataset + " has " +
                         std::to_string(test.channels) + " and " + std::to_string(test.num_classes));
  const std::vector<runtime::VectorF> logits = blame_input(o.model_path, [&] {
    return runtime::predict_logits(model, test.inputs.data(), test.count(), test.seq_len, o.threads);
  });
  int64_t correct = 0;
  for (size_t i = 0; i < logits.size(); ++i) correct += runtime::argmax(logits[i]) == test.labels[i];
  const double accuracy = test.count() > 0 ? static_cast<double>(correct) / test.count() : 0.0;
  const double loss = runtime::mean_cross_entropy(logits, test.labels);
  if (o.json) {
    print_json({{"accuracy", accuracy}, {"n", test.count()}, {"loss", loss}});
  } else {
    char line[128];
    std::snprintf(line, sizeof line, "test accuracy %.4f%% (%lld of %lld), loss %.6f", 100 * accuracy,
                  static_cast<long long>(correct), static_cast<long long>(test.count()), loss);
    std::cout << line << "  " << o.model_path << " on " << o.dataset << "\n";
  }
  return kExitSuccess;
}

int classify_input(const runtime::Model& model, const ClassifyOptions& o) {
  runtime::Sequence sequence;
  try {
    sequence = runtime::read_sequence_file(o.input_path, model.architecture().input_dim);
  } catch (const runtime::SequenceFileError& e) {
    throw io::InputError(e.what());
  }
  const std::string trained_length = metadata_or(model, "seq_len", "");
  if (!trained_length.empty() && trained_length != std::to_string(sequence.length))
    report_warning(o.input_path + " has " + std::to_string(sequence.length) +
                   (sequence.length == 1 ? " step" : " steps") +
                   "; " + o.model_path + " was trained on " + metadata_or(model, "dataset", "its dataset") +
                   " sequences of " + trained_length + " (a missing or extra line?)");
  // A token id outside the vocabulary is the input file's fault.
  const runtime::VectorF logits =
      blame_input(o.input_path, [&] { return model.classify(sequence.values.data(), sequence.length); });
  const runtime::VectorF p = runtime::softmax(logits);
  const int32_t best = runtime::argmax(logits);
  if (o.json) {
    print_json({{"class", best},
                {"probabilities", std::vector<float>(p.data(), p.data() + p.size())},
                {"logits", std::vector<float>(logits.data(), logits.data() + logits.size())},
                {"length", sequence.length}});
    return kExitSuccess;
  }
  std::cout << "class " << best << "  (" << sequence.length << (sequence.length == 1 ? " step, " : " steps, ")
            << o.input_path << ")\n";
  char line[64];
  for (Eigen::Index k = 0; k < p.size(); ++k) {
    std::snprintf(line, sizeof line, "  %5ld  %.6f%s\n", static_cast<long>(k), p[k], k == best ? "  <" : "");
    std::cout << line;
  }
  return kExitSuccess;
}

}  // namespace

CLI::App* add_classify_command(CLI::App& app, ClassifyOptions& options) {
  CLI::App* command = app.add_subcommand("classify", "Classify with an exported model (no LibTorch)");
  command->add_option("--model", options.model_path, "Model file written by `compressm export`")->required();
  CLI::Option* dataset = command->add_option("--dataset", options.dataset, "Accuracy on this dataset's test split");
  command->add_option("--data-dir", options.data_dir, "Dataset folder (default: the export's, else the dataset's)")
      ->needs(dataset);
  CLI::Option* input = command->add_option("--input", options.input_path,
                                            "One sequence: a text file of L lines of input_dim numbers");
  dataset->excludes(input);
  command->add_option("--threads", options.threads, "Threads for --dataset (sequences in parallel)")
      ->check(CLI::Range(1, 256))
      ->needs(dataset);
  command->add_flag("--json", options.json,
                    R"(Print {"accuracy", "n", "loss"} (--dataset) or {"class", "probabilities", ...} (--input))");
  return command;
}

int run_classify(const ClassifyOptions& options) {
  if (options.dataset.empty() == options.input_path.empty())
    throw UsageError("classify: give exactly one of --dataset NAME or --input FILE");
  const runtime::Model model = load_model(options.model_path);
  return options.dataset.empty() ? classify_input(model, options) : classify_dataset(model, options);
}

}  // namespace compressm::cli
