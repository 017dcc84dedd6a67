// Training steps/s of an LRU model on random data (no data pipeline): forward,
// cross-entropy, backward, AdamW step. The sMNIST paper configuration by default
// (1 block, N=256, H=8, batch 50, L=784, 1 input channel, 10 classes).
//
//   bench_train_step [--blocks 1] [--state 256] [--hidden 8] [--batch 50] [--length 784]
//                    [--steps 30] [--threads 2]
//
// Last stdout line: JSON with ms_per_step (median wall time), steps_per_s and
// cpu_ms_per_step (median process CPU time, all threads: robust to other load
// on a shared machine with --threads 1; spinning workers count with 2).
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <string>

#include "nn/lru_model.h"

namespace {

struct Options {
  int64_t blocks = 1, state = 256, hidden = 8, batch = 50, length = 784, steps = 30;
  int threads = 2;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::stoll(argv[i + 1]);
    if (a == "--blocks") o.blocks = v;
    else if (a == "--state") o.state = v;
    else if (a == "--hidden") o.hidden = v;
    else if (a == "--batch") o.batch = v;
    else if (a == "--length") o.length = v;
    else if (a == "--steps") o.steps = v;
    else if (a == "--threads") o.threads = static_cast<int>(v);
    else throw std::invalid_argument("unknown option " + a);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  // Keep freed tensors in the process: returning them to the OS costs page
  // faults on every step.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  at::set_num_threads(o.threads);
  torch::manual_seed(0);
  compressm::nn::LruModelOptions mo;
  mo.input_dim = 1;
  mo.num_classes = 10;
  mo.num_blocks = o.blocks;
  mo.state_dim = o.state;
  mo.hidden_dim = o.hidden;
  compressm::nn::LruModel model(mo);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(model->ssm_parameters(),
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(5e-4).weight_decay(0.0)));
  groups.emplace_back(model->other_parameters(),
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(1e-3).weight_decay(0.01)));
  torch::optim::AdamW optimizer(std::move(groups));
  const torch::Tensor x = torch::rand({o.batch, o.length, 1});
  const torch::Tensor y = torch::randint(0, 10, {o.batch}, torch::kLong);
  std::vector<double> ms, cpu;
  for (int64_t step = 0; step < o.steps + 3; ++step) {
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    optimizer.step();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step < 3) continue;  // 3 warm-up steps
    ms.push_back(t);
    cpu.push_back(1e3 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  const double median = ms[ms.size() / 2], cpu_median = cpu[cpu.size() / 2];
  std::fprintf(stderr, "compressm: %lld block(s) N=%lld H=%lld B=%lld L=%lld, %d threads: %.2f ms/step, %.2f steps/s\n",
               (long long)o.blocks, (long long)o.state, (long long)o.hidden, (long long)o.batch,
               (long long)o.length, o.threads, median, 1000.0 / median);
  std::cout << "{\"bench\": \"train_step\", \"impl\": \"compressm\", \"ms_per_step\": " << median
            << ", \"steps_per_s\": " << 1000.0 / median << ", \"cpu_ms_per_step\": " << cpu_median
            << ", \"threads\": " << o.threads << "}" << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
  return 2;
}
