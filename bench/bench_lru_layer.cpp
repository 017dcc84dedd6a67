// One LRU layer, forward + backward, fused kernel against the unfused path
// (LibTorch GEMMs around the diagonal-scan op) in the same run. sMNIST layer
// shape by default.
//
//   bench_lru_layer [--state 256] [--hidden 8] [--batch 50] [--length 784]
//                   [--steps 20] [--threads 1]
//
// Last stdout line: JSON with the median ms of each path and their ratio, as
// wall time and as process CPU time (all threads; robust to other load on a
// shared machine when --threads 1).
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <string>

#include "bench_flags.h"
#include "benchmark/step_benchmark.h"
#include "nn/lru_layer.h"

namespace {

struct Options {
  int64_t state = 256, hidden = 8, batch = 50, length = 784, steps = 20;
  int threads = 1;
};

Options parse(int argc, char** argv) {
  Options o;
  compressm::bench::Flags flags(argc, argv);
  flags.read("--state", o.state);
  flags.read("--hidden", o.hidden);
  flags.read("--batch", o.batch);
  flags.read("--length", o.length);
  flags.read("--steps", o.steps);
  flags.read("--threads", o.threads);
  flags.check_all_read();
  return o;
}

double cpu_ms() { return 1e3 * static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

struct Timing {
  double wall_ms, cpu_ms;  // medians
};

// Forward + backward of sum(upstream .* layer(u)).
template <class Forward>
Timing time_steps(compressm::nn::LruLayer& layer, const torch::Tensor& u, const torch::Tensor& upstream,
                  int64_t steps, Forward forward) {
  std::vector<double> wall, cpu;
  for (int64_t step = 0; step < steps + 2; ++step) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_ms();
    layer->zero_grad();
    (forward(u) * upstream).sum().backward();
    if (step < 2) continue;  // 2 warm-up steps
    cpu.push_back(cpu_ms() - cpu_start);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return {compressm::benchmark::median(wall), compressm::benchmark::median(cpu)};
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  at::set_num_threads(o.threads);
  torch::manual_seed(0);
  compressm::nn::LruLayer layer(o.state, o.hidden);
  const torch::Tensor u = torch::randn({o.batch, o.length, o.hidden}).requires_grad_(true);
  const torch::Tensor upstream = torch::randn({o.batch, o.length, o.hidden});
  const Timing fused = time_steps(layer, u, upstream, o.steps, [&](const torch::Tensor& x) { return layer->forward(x); });
  const Timing unfused =
      time_steps(layer, u, upstream, o.steps, [&](const torch::Tensor& x) { return layer->forward_unfused(x); });
  std::fprintf(stderr, "LRU layer N=%lld H=%lld B=%lld L=%lld, %d threads: fused %.2f ms (%.2f CPU ms), "
               "unfused %.2f ms (%.2f CPU ms)\n", (long long)o.state, (long long)o.hidden, (long long)o.batch,
               (long long)o.length, o.threads, fused.wall_ms, fused.cpu_ms, unfused.wall_ms, unfused.cpu_ms);
  std::cout << "{\"bench\": \"lru_layer\", \"fused_ms\": " << fused.wall_ms << ", \"unfused_ms\": " << unfused.wall_ms
            << ", \"speedup\": " << unfused.wall_ms / fused.wall_ms << ", \"fused_cpu_ms\": " << fused.cpu_ms
            << ", \"unfused_cpu_ms\": " << unfused.cpu_ms << ", \"cpu_speedup\": " << unfused.cpu_ms / fused.cpu_ms
            << ", \"threads\": " << o.threads << "}" << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_lru_layer: error: %s\n", e.what());
  return 2;
}
