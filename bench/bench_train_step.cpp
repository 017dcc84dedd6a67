// Training steps/s of an LRU model on random data (no data pipeline): forward,
// cross-entropy, backward, AdamW step (src/benchmark/step_benchmark.h, the
// step `compressm bench` times, without a config file: scripts/gpu_check.sh
// runs it on machines without yaml-cpp). The sMNIST paper configuration by
// default (1 block, N=256, H=8, batch 50, L=784, 1 input channel, 10 classes).
//
//   bench_train_step [--blocks 1] [--state 256] [--hidden 8] [--batch 50] [--length 784]
//                    [--input 1] [--classes 10] [--dropout 0.1] [--steps 30] [--warmup 3] [--threads 2]
//                    [--device cpu|cuda] [--precision fp32|tf32|bf16] [--graph 0|1]
//                    [--block-ops auto|fused|composed] [--lru-segments 0|1|2|4]
//                    [--wide-lru bf16|fp32] [--queue-ahead 1|0] [--vector-width 4|1]
//                    [--state-align 4|1]
//
// --dropout is the blocks' drop rate, 0.1 as in configs/smnist.yaml and
// configs/scifar.yaml (the official code's step trains with it too); the
// H200 figures in docs/gpu.md before 2026-11-27 ran with none.
// --block-ops picks how the blocks run their element-wise work
// (LruModelOptions::block_ops; auto: fused on CUDA, LibTorch's ops on the
// CPU); scripts/gpu_check.sh times fused against composed on the device.
// --lru-segments forces the fused LRU kernels' time segments (CUDA, H <= 16;
// kernels/cuda/lru_cuda.h; 0 = automatic), for the same comparison.
// --queue-ahead 1 (default; with --graph 1 on CUDA): each timed step is queued
// before the previous one's loss is read back, as the trainer runs them, and
// a step's time is the wall time between two results; 0: each step waits
// for its loss before the next starts (the figures of docs/gpu.md up to
// 2026-11-27). The JSON says which ran ("queued_ahead").
// --wide-lru fp32 keeps the LRU projections of layers wider than 16 channels
// in float32 (TF32 GEMMs on CUDA) in the bf16 mode
// (LruModelOptions::wide_lru_bf16; default bf16), the baseline of the
// bfloat16 projections (lru_layer_bf16).
// --vector-width 1 makes the wide element-wise kernels take one element per
// thread instead of four (kernels::cuda::set_vector_width; CUDA, H a
// multiple of 4): the baseline of their four-wide accesses.
// --state-align 1 leaves the bf16 layers' states unpadded
// (nn::set_bf16_state_alignment): the baseline of padding N to a multiple
// of 4 (N = 93: 96) for cuBLAS's aligned GEMM kernels.
//
// Last stdout line: JSON with ms_per_step (median wall time), steps_per_s and
// cpu_ms_per_step (median process CPU time, all threads: robust to other load
// on a shared machine with --threads 1; spinning workers count with 2), and
// the configuration measured.
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "bench_flags.h"
#include "bench_model_flags.h"
#include "benchmark/step_benchmark.h"
#include "nn/cuda_ops.h"
#include "nn/lru_layer_function.h"

namespace {

struct Options {
  compressm::bench::ModelFlags model;
  int64_t steps = 30, warmup = 3;
  int threads = 2;
  int64_t lru_segments = 0;
  int64_t vector_width = 4;
  int64_t state_align = 4;
  bool graph = false;
  bool queue_ahead = true;
  std::string device = "cpu";
};

Options parse(int argc, char** argv) {
  Options o;
  compressm::bench::Flags flags(argc, argv);
  flags.read("--device", o.device);
  o.model.read(flags);
  flags.read("--steps", o.steps);
  flags.read("--warmup", o.warmup);
  flags.read("--threads", o.threads);
  flags.read("--lru-segments", o.lru_segments);
  flags.read("--vector-width", o.vector_width);
  flags.read("--state-align", o.state_align);
  std::string graph = "0", queue_ahead = "1";
  flags.read("--graph", graph);
  flags.read("--queue-ahead", queue_ahead);
  flags.check_all_read();
  if (graph != "0" && graph != "1") throw std::invalid_argument("--graph: 0 or 1, got " + graph);
  if (queue_ahead != "0" && queue_ahead != "1")
    throw std::invalid_argument("--queue-ahead: 0 or 1, got " + queue_ahead);
  o.graph = graph == "1";
  o.queue_ahead = queue_ahead == "1";
  if (o.vector_width != 4 && o.vector_width != 1)
    throw std::invalid_argument("--vector-width: 4 or 1, got " + std::to_string(o.vector_width));
  if (o.state_align != 4 && o.state_align != 1)
    throw std::invalid_argument("--state-align: 4 or 1, got " + std::to_string(o.state_align));
  o.model.check();
  compressm::bench::check_device_name(o.device);
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
  compressm::nn::cuda_ops::set_fused_time_segments(o.lru_segments);
  compressm::nn::cuda_ops::set_elementwise_vector_width(o.vector_width);
  compressm::nn::set_bf16_state_alignment(o.state_align);
  if (o.device == "cuda" && !torch::cuda::is_available()) throw std::invalid_argument("--device cuda: no CUDA device");
  compressm::benchmark::StepBenchOptions b;
  const compressm::bench::ModelFlags& m = o.model;
  b.model = m.model();
  b.batch_size = m.batch;
  b.length = m.length;
  b.steps = o.steps;
  b.warmup_steps = o.warmup;
  b.device = o.device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  b.cuda_graph = o.graph;
  b.queue_ahead = o.queue_ahead;
  const compressm::benchmark::StepBenchResult r = compressm::benchmark::run_step_bench(b);
  std::fprintf(stderr, "compressm: %lld block(s) N=%lld H=%lld B=%lld L=%lld, %s %s, %d threads: %.2f ms/step\n",
               (long long)m.blocks, (long long)m.state, (long long)m.hidden, (long long)m.batch,
               (long long)m.length, o.device.c_str(), m.precision.c_str(), o.threads, r.median_ms);
  std::cout << "{\"bench\": \"train_step\", \"impl\": \"compressm\", \"ms_per_step\": " << r.median_ms
            << ", \"steps_per_s\": " << 1000.0 / r.median_ms << ", \"cpu_ms_per_step\": " << r.cpu_median_ms
            << ", \"threads\": " << o.threads << ", \"device\": \"" << o.device << "\", \"precision\": \""
            << m.precision << "\", \"num_blocks\": " << m.blocks << ", \"state_dim\": " << m.state
            << ", \"hidden_dim\": " << m.hidden << ", \"batch_size\": " << m.batch << ", \"length\": " << m.length
            << ", \"steps\": " << o.steps << ", \"dropout\": " << m.dropout << ", \"block_ops\": \""
            << m.block_ops << "\"" << ", \"lru_segments\": " << o.lru_segments
            << ", \"vector_width\": " << o.vector_width << ", \"state_align\": " << o.state_align
            << ", \"wide_lru\": \""
            << m.wide_lru << "\"" << ", \"cuda_graph\": " << (r.graph_captured ? "true" : "false")
            << ", \"queued_ahead\": " << (r.queued_ahead ? "true" : "false")
            << ", \"final_loss\": " << r.final_loss << "}" << std::endl;
  return 0;
} catch (const c10::Error& e) {
  std::fprintf(stderr, "bench_train_step: error: %s\n", e.what_without_backtrace());
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
  return 2;
}
