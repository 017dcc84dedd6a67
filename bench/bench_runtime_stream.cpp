// The standalone runtime against LibTorch's eval-mode forward of the same
// model, in the same process: the sMNIST configuration (1 block, H=8, L=784,
// 1 channel, 10 classes) at full size (N=256) and balanced-truncated to
// --reduced states (47 by default, the paper's tau=0.01 result).
//
//   bench_runtime_stream [--state 256] [--reduced 47] [--hidden 8] [--length 784]
//                        [--batch 50] [--threads 2] [--repeats 5]
//
// Per model: runtime streaming step latency (one stream, median and p99 over
// every step of --repeats sequences), runtime sequences/s (whole-sequence pass
// and streaming, --threads sequences in parallel), LibTorch sequences/s
// (forward of a {batch, L, 1} tensor with --threads intra-op threads) and the
// latency of one sequence on each side. Last stdout line: JSON with every figure.
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bench_flags.h"
#include "benchmark/step_benchmark.h"
#include "export/model_export.h"
#include "linalg/lru_parameters.h"
#include "linalg/lru_reduction.h"
#include "nn/lru_model.h"
#include "runtime/model.h"
#include "runtime/stream.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int64_t state = 256, reduced = 47, hidden = 8, length = 784, batch = 50, repeats = 5;
  int threads = 2;
};

Options parse(int argc, char** argv) {
  Options o;
  compressm::bench::Flags flags(argc, argv);
  flags.read("--state", o.state);
  flags.read("--reduced", o.reduced);
  flags.read("--hidden", o.hidden);
  flags.read("--length", o.length);
  flags.read("--batch", o.batch);
  flags.read("--threads", o.threads);
  flags.read("--repeats", o.repeats);
  flags.check_all_read();
  return o;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

// Median wall time (ms) of `repeats` calls of `f`, after one warm-up call.
template <typename F>
double time_ms(int64_t repeats, F&& f) {
  f();
  std::vector<double> ms;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    f();
    ms.push_back(ms_since(start));
  }
  return compressm::benchmark::median(ms);
}

// `work(sequence)` for sequences [0, count) on `threads` threads, i, i + threads, ...
template <typename F>
void parallel_sequences(int64_t count, int threads, F&& work) {
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&, i] {
      for (int64_t s = i; s < count; s += threads) work(s);
    });
  for (int64_t s = 0; s < count; s += threads) work(s);
  for (auto& t : pool) t.join();
}

}  // namespace

namespace {

namespace rt = compressm::runtime;

rt::Model exported(const compressm::nn::LruModel& model) {
  const rt::TensorFile file = compressm::exporting::model_tensor_file(model, "", "smnist", 0);
  const std::string bytes = compressm::exporting::encode_model_file(file, "bench");
  return rt::Model(rt::model_weights(rt::parse_safetensors(bytes, "bench"), "bench"));
}

// Largest |runtime - LibTorch| / max |LibTorch| over the first sequences: the
// benchmark refuses to time a computation that disagrees.
double parity_error(compressm::nn::LruModel& model, const rt::Model& runtime_model, const torch::Tensor& x) {
  const int64_t count = std::min<int64_t>(x.size(0), 4), length = x.size(1);
  const torch::Tensor expected = model->forward(x.slice(0, 0, count));
  double worst = 0;
  const float scale = expected.abs().max().item<float>();
  for (int64_t s = 0; s < count; ++s) {
    const rt::VectorF logits = runtime_model.classify(x.data_ptr<float>() + s * length, length);
    for (int64_t k = 0; k < logits.size(); ++k)
      worst = std::max<double>(worst, std::abs(logits[k] - expected[s][k].item<float>()) / scale);
  }
  return worst;
}

nlohmann::json measure(compressm::nn::LruModel& model, const Options& o, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  model->eval();
  at::set_num_threads(o.threads);
  const rt::Model runtime_model = exported(model);
  const float* u = x.data_ptr<float>();  // {batch, L, 1}
  const int64_t L = o.length;
  const double parity = parity_error(model, runtime_model, x);
  if (!(parity < 1e-5)) throw std::runtime_error("runtime and LibTorch disagree: " + std::to_string(parity));

  std::vector<double> step_us;  // one stream, every step timed
  rt::Stream stream(runtime_model);
  for (int64_t r = 0; r < o.repeats; ++r) {
    stream.reset();
    for (int64_t t = 0; t < L; ++t) {
      const auto start = Clock::now();
      stream.step(u + (r % o.batch) * L + t);
      step_us.push_back(1000.0 * ms_since(start));
    }
  }
  const double whole_ms =
      time_ms(o.repeats, [&] { rt::predict_classes(runtime_model, u, o.batch, L, o.threads); });
  const double streamed_ms = time_ms(o.repeats, [&] {
    parallel_sequences(o.batch, o.threads, [&](int64_t s) {
      rt::Stream st(runtime_model);
      for (int64_t t = 0; t < L; ++t) st.step(u + s * L + t);
    });
  });
  const double torch_ms = time_ms(o.repeats, [&] { model->forward(x); });
  const double runtime_one_ms = time_ms(4 * o.repeats, [&] { runtime_model.classify(u, L); });
  const torch::Tensor one = x.slice(0, 0, 1);
  const double torch_one_ms = time_ms(4 * o.repeats, [&] { model->forward(one); });
  const double b = static_cast<double>(o.batch);
  return {{"state_dim", model->state_dims().at(0)},
          {"parity_max_rel_error", parity},
          {"runtime_step_us_median", compressm::benchmark::median(step_us)},
          {"runtime_step_us_p99", quantile(step_us, 0.99)},
          {"runtime_seq_per_s", 1000.0 * b / whole_ms},
          {"runtime_streamed_seq_per_s", 1000.0 * b / streamed_ms},
          {"torch_seq_per_s", 1000.0 * b / torch_ms},
          {"runtime_one_seq_ms", runtime_one_ms},
          {"torch_one_seq_ms", torch_one_ms},
          {"torch_one_seq_us_per_step", 1000.0 * torch_one_ms / L},
          {"speedup_seq_per_s", torch_ms / whole_ms},
          {"speedup_one_seq", torch_one_ms / runtime_one_ms}};
}

void print_row(const nlohmann::json& m) {
  std::fprintf(stderr,
               "N=%-4lld step %6.2f us (p99 %6.2f) | seq/s: runtime %8.1f, streamed %8.1f, LibTorch %8.1f "
               "(x%.2f) | one seq: runtime %.3f ms, LibTorch %.3f ms (x%.2f) | parity %.1e\n",
               m["state_dim"].get<long long>(), m["runtime_step_us_median"].get<double>(),
               m["runtime_step_us_p99"].get<double>(), m["runtime_seq_per_s"].get<double>(),
               m["runtime_streamed_seq_per_s"].get<double>(), m["torch_seq_per_s"].get<double>(),
               m["speedup_seq_per_s"].get<double>(), m["runtime_one_seq_ms"].get<double>(),
               m["torch_one_seq_ms"].get<double>(), m["speedup_one_seq"].get<double>(),
               m["parity_max_rel_error"].get<double>());
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  mallopt(M_MMAP_MAX, 0);  // keep freed tensors in the process, as bench_train_step
  mallopt(M_TRIM_THRESHOLD, -1);
  torch::manual_seed(0);
  compressm::nn::LruModelOptions mo;
  mo.input_dim = 1;
  mo.num_classes = 10;
  mo.state_dim = o.state;
  mo.hidden_dim = o.hidden;
  compressm::nn::LruModel model(mo);
  const torch::Tensor x = torch::rand({o.batch, o.length, 1});
  nlohmann::json results = nlohmann::json::array();
  results.push_back(measure(model, o, x));
  print_row(results.back());
  // The same model, balanced-truncated by the linalg core.
  auto layer = model->lru_layers().at(0);
  const auto reduction =
      compressm::linalg::reduce_diagonal_system(layer->to_system(), compressm::linalg::RankRule::fixed(o.reduced));
  layer->load_parameters(compressm::linalg::system_to_lru(reduction.reduced, nullptr));
  results.push_back(measure(model, o, x));
  print_row(results.back());
  std::cout << nlohmann::json{{"bench", "runtime_stream"}, {"threads", o.threads}, {"batch", o.batch},
                              {"length", o.length}, {"hidden", o.hidden}, {"models", results}}
                   .dump()
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_runtime_stream: error: %s\n", e.what());
  return 2;
}
