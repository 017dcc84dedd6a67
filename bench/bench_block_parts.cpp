// One LRU block, stage by stage, on a device: BatchNorm
// (LruBlockImpl::normalize), the LRU layer in the block's precision, the same
// layer with float32 projections (the baseline of the bf16 mode's bfloat16
// ones, when the layer is wide), the rest of the block (GELU, dropout, GLU,
// residual: LruBlockImpl::mix), the LRU with its skip term, GELU and dropout
// as one op where the block runs it so (fused ops, wide, bf16:
// lru_layer_bf16_gelu_dropout, then the GLU stage, LruBlockImpl::glu: with
// norm, the stages of such a block; in training it also takes the BatchNorm
// into that op, norm_lru_gelu_dropout, lru_block_bf16_front) and the whole
// block (and, where the norm is fused, block_norm_apart: the block with the
// BatchNorm module apart). Each stage's forward pass
// alone and forward + backward, median wall time over the steps with the
// device synchronised around each one (so a stage's time includes its kernel
// launches: on CUDA, eager, not graphed). Where Nsight Compute is missing
// (scripts/gpu_check.sh), the breakdown of a wide block's step; sCIFAR's
// block (N = 384, H = 512, B = 50, L = 1024, bf16) by default.
//
//   bench_block_parts [--device cuda|cpu] [--state 384] [--hidden 512] [--batch 50] [--length 1024]
//                     [--precision fp32|tf32|bf16] [--dropout 0.1] [--steps 20] [--warmup 3] [--threads 2]
//                     [--block-ops auto|fused|composed]
//
// Last stdout line: JSON {"bench": "block_parts", "parts": {NAME: {"forward_ms": .., "train_ms": ..}, ...},
// and the configuration}.
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_flags.h"
#include "bench_model_flags.h"
#include "benchmark/step_benchmark.h"
#include "nn/fused_ops.h"
#include "nn/lru_model.h"

namespace {

using compressm::nn::Precision;

struct Options {
  int64_t state = 384, hidden = 512, batch = 50, length = 1024, steps = 20, warmup = 3;
  int threads = 2;
  double dropout = 0.1;
  std::string device = "cuda", precision = "bf16", block_ops = "auto";
};

Options parse(int argc, char** argv) {
  Options o;
  compressm::bench::Flags flags(argc, argv);
  flags.read("--device", o.device);
  flags.read("--state", o.state);
  flags.read("--hidden", o.hidden);
  flags.read("--batch", o.batch);
  flags.read("--length", o.length);
  flags.read("--precision", o.precision);
  flags.read("--dropout", o.dropout);
  flags.read("--steps", o.steps);
  flags.read("--warmup", o.warmup);
  flags.read("--threads", o.threads);
  flags.read("--block-ops", o.block_ops);
  flags.check_all_read();
  compressm::bench::block_ops_named(o.block_ops);
  compressm::bench::precision_named(o.precision);
  compressm::bench::check_device_name(o.device);
  if (o.steps < 1 || o.warmup < 0) throw std::invalid_argument("--steps: at least 1; --warmup: at least 0");
  compressm::bench::check_drop_rate(o.dropout);
  return o;
}

struct Timing {
  double forward_ms, train_ms;
};

// Median wall time of `run` (forward) and of run + backward(upstream), the
// device synchronised before and after each repetition.
Timing time_stage(const Options& o, const torch::Tensor& upstream, const torch::Tensor& upstream_bf16,
                  const std::function<torch::Tensor()>& run) {
  const bool cuda = o.device == "cuda";
  auto median_of = [&](bool backward) {
    std::vector<double> ms;
    for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
      if (cuda) torch::cuda::synchronize();
      const auto start = std::chrono::steady_clock::now();
      const torch::Tensor out = run();
      if (backward) out.backward(out.scalar_type() == upstream.scalar_type() ? upstream : upstream_bf16);
      if (cuda) torch::cuda::synchronize();
      if (step >= o.warmup)
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return compressm::benchmark::median(ms);
  };
  const double forward = median_of(false);
  return {forward, median_of(true)};
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  at::set_num_threads(o.threads);
  if (o.device == "cuda" && !torch::cuda::is_available()) throw std::invalid_argument("--device cuda: no CUDA device");
  const torch::Device device = o.device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const Precision precision = compressm::bench::precision_named(o.precision);
  // What LruModelImpl sets for the whole model.
  if (precision != Precision::kFp32) compressm::nn::enable_tf32(true);
  if (precision == Precision::kBf16) compressm::nn::require_float32_bf16_reductions();
  torch::manual_seed(0);
  const compressm::nn::BlockOps ops = compressm::bench::block_ops_named(o.block_ops);
  compressm::nn::LruBlock block(o.state, o.hidden, o.dropout, compressm::nn::LruInit{}, precision, ops);
  block->to(device);
  block->train();
  const auto options = torch::TensorOptions().device(device);
  const torch::Tensor x = torch::randn({o.batch, o.length, o.hidden}, options).requires_grad_(true);
  const torch::Tensor upstream = torch::randn({o.batch, o.length, o.hidden}, options);
  const torch::Tensor upstream_bf16 = upstream.to(torch::kBFloat16);  // for the stages with a bfloat16 output
  // Each stage's input as a leaf of its own.
  const torch::Tensor z = block->normalize(x).detach().requires_grad_(true);
  const torch::Tensor y = block->lru(z, block->lru_precision()).detach().requires_grad_(true);

  std::vector<std::pair<std::string, std::function<torch::Tensor()>>> stages{
      {"norm", [&] { return block->normalize(x); }},
      {"lru", [&] { return block->lru(z, block->lru_precision()); }},
      {"mix", [&] { return block->mix(y, x); }},
      {"block", [&] { return block->forward(x); }}};
  if (compressm::nn::LruLayerImpl::bf16_projections(precision, o.hidden))
    stages.insert(stages.begin() + 2, {"lru_fp32_projections", [&] { return block->lru(z, Precision::kFp32); }});
  // What the block runs instead of lru and mix there (fused ops, wide, bf16):
  // the LRU with its skip term, GELU and dropout, then the GLU stage (on a
  // bfloat16 leaf g); then mix is not part of the block.
  const torch::Tensor g = torch::randn({o.batch, o.length, o.hidden}, options.dtype(torch::kBFloat16))
                              .requires_grad_(true);
  if (block->fused_lru_activation(z)) {
    stages.insert(stages.end() - 1, {"lru_gelu_dropout", [&] {
                    return compressm::nn::lru_layer_bf16_gelu_dropout(
                        block->lru->inputs(z), compressm::nn::dropout_keep_mask(z.sizes(), o.dropout, z.device()),
                        o.dropout);
                  }});
    stages.insert(stages.end() - 1, {"glu", [&] { return block->glu(g, x); }});
  }
  // In training such a block also runs its BatchNorm inside that op
  // (lru_block_bf16_front_dropout, as the block calls it: on CUDA its mask
  // drawn in the kernels; norm_lru_gelu_dropout, then glu); the whole block
  // with the BatchNorm module apart is its baseline.
  if (block->fused_front(x)) {
    stages.insert(stages.end() - 1, {"norm_lru_gelu_dropout", [&] {
                    return compressm::nn::lru_block_bf16_front_dropout(block->lru->inputs(x), o.dropout,
                                                                       block->norm->options.eps())
                        .g;
                  }});
    stages.push_back({"block_norm_apart", [&] {
                        block->fuse_norm = false;
                        torch::Tensor out = block->forward(x);
                        block->fuse_norm = true;
                        return out;
                      }});
  }

  std::ostringstream parts;
  for (size_t k = 0; k < stages.size(); ++k) {
    const Timing t = time_stage(o, upstream, upstream_bf16, stages[k].second);
    std::fprintf(stderr, "%-22s forward %8.3f ms   forward + backward %8.3f ms\n", stages[k].first.c_str(),
                 t.forward_ms, t.train_ms);
    parts << (k ? ", " : "") << "\"" << stages[k].first << "\": {\"forward_ms\": " << t.forward_ms
          << ", \"train_ms\": " << t.train_ms << "}";
  }
  std::cout << "{\"bench\": \"block_parts\", \"parts\": {" << parts.str() << "}, \"device\": \"" << o.device
            << "\", \"precision\": \"" << o.precision << "\", \"state_dim\": " << o.state
            << ", \"hidden_dim\": " << o.hidden << ", \"batch_size\": " << o.batch << ", \"length\": " << o.length
            << ", \"dropout\": " << o.dropout << ", \"steps\": " << o.steps << ", \"threads\": " << o.threads << "}"
            << std::endl;
  return 0;
} catch (const c10::Error& e) {
  std::fprintf(stderr, "bench_block_parts: error: %s\n", e.what_without_backtrace());
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_block_parts: error: %s\n", e.what());
  return 2;
}
