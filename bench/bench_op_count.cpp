// How many kernels one training step launches, counted on the CPU: the ops a
// CUDA graph of the step would hold, for the sMNIST configuration where
// launches and one-after-another small kernels, not bytes, set the pace
// (docs/gpu.md, "Fused ops"). No GPU needed.
//
//   bench_op_count [--blocks 1] [--state 256] [--hidden 8] [--batch 50] [--length 784]
//                  [--input 1] [--classes 10] [--dropout 0.1] [--precision fp32|tf32|bf16]
//                  [--block-ops auto|fused|composed] [--wide-lru bf16|fp32] [--list 0|1]
//
// LibTorch's RecordFunction callbacks see every ATen op the step dispatches.
// An op counts as one kernel when it is a leaf (it dispatches no other op
// that launches one) and is not in the list below of ops that only make
// views or allocate; a few ops count as a fixed number of CUDA kernels
// whatever they call on the CPU (fixed_ops: GEMMs, sums, BatchNorm). The
// project's fused autograd ops (RECORD_USER_SCOPE "compressm::...") count as
// the kernels their CUDA path launches (fused_launches, read off
// src/nn/cuda_ops.cpp and src/kernels/cuda/fused_ops.cu), and the ATen ops
// they call on both devices (GEMMs, casts) as above; their CPU paths call no
// ATen op that the CUDA path does not. An estimate of the CUDA graph, not a
// trace of it: on CUDA LibTorch may split or merge some ops differently.
// The optimiser is left out: the graphed step runs AdamW as one multi-tensor
// kernel per parameter bucket (nn/graphed_step.h), not torch::optim's ops.
//
// Forward (with the loss) and backward are counted apart on the second step
// (the first warms caches up). --list 1 prints the ops by name on stderr,
// each with the sizes of its largest tensor input (which passes go over
// whole activations).
// Last stdout line: JSON with forward_kernels, backward_kernels (all
// kernels), fused_ops (calls of fused ops) and the configuration counted.
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "bench_flags.h"
#include "bench_model_flags.h"
#include "nn/fused_ops.h"
#include "nn/lru_model.h"

namespace {

struct Options {
  compressm::bench::ModelFlags model;
  bool list = false;
};

Options parse(int argc, char** argv) {
  Options o;
  o.model.block_ops = "fused";
  compressm::bench::Flags flags(argc, argv);
  o.model.read(flags);
  // The count models the CUDA step, where auto means the fused ops, except
  // that narrow fp32 blocks (H <= 16, not bf16) run their mix stage as
  // narrow_mix on both devices: for those auto stays auto.
  if (o.model.block_ops == "auto" && (o.model.hidden > 16 || o.model.precision == "bf16"))
    o.model.block_ops = "fused";
  std::string list = "0";
  flags.read("--list", list);
  flags.check_all_read();
  o.model.check();
  if (list != "0" && list != "1") throw std::invalid_argument("--list: 0 or 1, got " + list);
  const compressm::bench::ModelFlags& m = o.model;
  if (m.blocks < 1 || m.state < 1 || m.hidden < 1 || m.batch < 2 || m.length < 1 || m.input < 1 || m.classes < 2)
    throw std::invalid_argument("sizes must be >= 1 (batch and classes >= 2)");
  o.list = list == "1";
  return o;
}

// Ops that launch no kernel on CUDA: views, shape queries, allocations, and
// conversions that found nothing to do (a copying one dispatches copy_).
const std::set<std::string>& no_kernel_ops() {
  static const std::set<std::string> names{
      "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::reshape",
      "aten::_reshape_alias", "aten::as_strided", "aten::as_strided_", "aten::t", "aten::transpose",
      "aten::permute", "aten::expand", "aten::expand_as", "aten::unsqueeze", "aten::squeeze", "aten::select",
      "aten::slice", "aten::detach", "aten::detach_", "aten::alias", "aten::resize_", "aten::set_",
      "aten::_unsafe_view", "aten::view_as", "aten::view_as_real", "aten::view_as_complex", "aten::real",
      "aten::imag", "aten::unbind", "aten::split", "aten::chunk", "aten::narrow", "aten::contiguous",
      "aten::to", "aten::lift", "aten::lift_fresh", "aten::result_type", "aten::flatten", "aten::unflatten",
      "aten::resolve_conj", "aten::resolve_neg", "aten::_conj", "aten::conj", "aten::type_as",
      "aten::is_same_size", "aten::_has_compatible_shallow_copy_type", "aten::size", "aten::stride",
      "aten::dim", "aten::numel", "aten::is_nonzero", "aten::new_empty", "aten::new_empty_strided",
      "aten::_view_as_real", "aten::squeeze_", "aten::unsqueeze_", "detach",
      "aten::_local_scalar_dense"};  // .item(): a copy to the host and a wait, not a kernel
  return names;
}

// ATen ops that are a fixed number of CUDA kernels whatever they call on
// the CPU (where mean is sum, fill_ and copy_): counted so, nothing below them.
const std::map<std::string, int64_t>& fixed_ops() {
  static const std::map<std::string, int64_t> launches{
      {"aten::mm", 1},   {"aten::addmm", 1},   {"aten::mean", 1},
      {"aten::sum", 1},  {"aten::bernoulli_", 1}, {"aten::native_batch_norm", 2},
      {"aten::native_batch_norm_backward", 2},
      // a keep mask drawn with Philox (nn::dropout_keep_mask): on CUDA one
      // kernel (kernels::cuda::draw_keep_mask)
      {"compressm::dropout_keep_mask", 1},
      // narrow_mix's masks, and those of the ops that draw them inside
      // their kernels on CUDA (nn/op_dropout.h): no kernel there
      {"compressm::narrow_mix_masks", 0},
      {"compressm::kernel_drawn_masks", 0},
      // nn::linear with K <= 16 inputs: on CUDA one kernel forward, and
      // the weight and bias gradients one column-parts kernel and a
      // sum_rows (its dL/dx, where wanted, an ATen mm outside this scope)
      {"compressm::narrow_linear_forward", 1},
      {"compressm::narrow_linear_weight_grads", 2}};
  return launches;
}

// The CUDA kernels each fused op launches itself (src/nn/cuda_ops.cpp and
// src/kernels/cuda/fused_ops.cu; a column-parts kernel with its sum_rows is
// two), besides the ATen ops it calls on both devices (GEMMs, casts), which
// count as any other. A fused op missing here ends the program with an error.
const std::map<std::string, int64_t>& fused_launches() {
  static const std::map<std::string, int64_t> launches{
      // the fused kernel, the skip term with the state blocks' sum / the
      // kernel, dL/dD's column parts, sum_rows, addcmul
      {"compressm::lru_layer_forward", 2}, {"compressm::lru_layer_backward", 4},
      {"compressm::diagonal_scan_forward", 1}, {"compressm::diagonal_scan_backward", 2},
      {"compressm::gelu_dropout_forward", 1}, {"compressm::gelu_dropout_backward", 1},
      // the kernel / the kernel and sum_rows of its blocks' weight-gradient sums
      {"compressm::narrow_mix_forward", 1}, {"compressm::narrow_mix_backward", 2},
      // backward: the kernel (with the bias gradient's per-thread sums), the
      // sums' column parts and sum_rows (the blocks always pass the GLU bias).
      // Not counted: on CUDA a float32 dense layer of more than 16 inputs
      // sums its bias gradient by column parts and sum_rows (nn::linear, two
      // kernels) where this CPU count sees LibTorch's one sum.
      {"compressm::glu_residual_forward", 1}, {"compressm::glu_residual_backward", 3},
      {"compressm::lru_parameterize_forward", 1}, {"compressm::lru_parameterize_backward", 1},
      // nn::linear's backward: its kernels are the ops and scopes under it
      {"compressm::linear_backward", 0},
      {"compressm::classification_loss_forward", 1}, {"compressm::classification_loss_backward", 1},
      // pack, scan, skip / scan, unpack, skip (2)
      {"compressm::lru_layer_bf16_forward", 3}, {"compressm::lru_layer_bf16_backward", 4},
      {"compressm::lru_layer_bf16_gelu_forward", 3}, {"compressm::lru_layer_bf16_gelu_backward", 4},
      // moments (2), cast, pack, scan, skip / skip (2), scan, unpack, the norm's sums (2), means, apply
      {"compressm::lru_block_bf16_front_forward", 6}, {"compressm::lru_block_bf16_front_backward", 8}};
  return launches;
}

struct Frame {
  std::string name;
  std::string shape;          // its largest tensor input's sizes, with --list 1
  bool counts = false;        // an ATen op or a fused op (not an autograd node)
  bool kernel_below = false;  // an op under it launches a kernel
  bool opaque = false;        // a fixed op: what runs under it is its own business
};

std::mutex mutex;
std::map<std::string, int64_t> kernels, fused_ops, views;  // this phase's counts by name
std::set<std::string> unknown_fused_ops;
thread_local std::vector<Frame> stack;

bool is_fused_op(const std::string& name) { return name.rfind("compressm::", 0) == 0; }

// "[50, 1024, 512]": the sizes of the op's largest tensor input (most
// elements), so that --list tells the passes over whole activations from
// those over weights; empty when the callback does not record inputs.
std::string largest_input(const at::RecordFunction& fn) {
  if (!fn.needsInputs()) return "";
  const at::Tensor* largest = nullptr;
  for (const c10::IValue& v : fn.inputs())
    if (v.isTensor() && v.toTensor().defined() && (!largest || v.toTensor().numel() > largest->numel()))
      largest = &v.toTensor();
  if (!largest) return "";
  std::string text = "[";
  for (int64_t d = 0; d < largest->dim(); ++d) text += (d ? ", " : "") + std::to_string(largest->size(d));
  return text + "]";
}

// "op < the outermost op or autograd node it runs under  [its largest
// input]", for --list.
std::string where(const Frame& op) {
  const std::string shape = op.shape.empty() ? "" : "  " + op.shape;
  for (const Frame& f : stack)
    if (f.name != op.name) return op.name + "  < " + f.name + shape;
  return op.name + shape;
}

bool under_fixed_op() {
  for (const Frame& f : stack)
    if (f.opaque) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const at::RecordScope scope = fn.scope();
  const std::string name = fn.name();
  // Autograd's nodes ("autograd::engine::evaluate_function: ...") are not
  // ops; of the user scopes only the project's fused ops count.
  const bool op = (scope == at::RecordScope::FUNCTION && name.rfind("autograd::", 0) != 0) ||
                  (scope == at::RecordScope::USER_SCOPE && is_fused_op(name));
  const bool hidden = under_fixed_op();
  stack.push_back({name, op && !hidden ? largest_input(fn) : "", op && !hidden, false,
                   op && !hidden && fixed_ops().count(name) > 0});
  return nullptr;
}

// A kernel: a fixed op or a fused op (as many as their tables say), or an op
// with no kernel under it that is not a view or an allocation.
void on_end(const at::RecordFunction&, at::ObserverContext*) {
  if (stack.empty()) return;
  const Frame f = stack.back();
  bool launches = f.kernel_below;
  if (f.counts) {
    std::lock_guard<std::mutex> lock(mutex);
    if (f.opaque) {
      kernels[where(f)] += fixed_ops().at(f.name);
      launches = true;
    } else if (is_fused_op(f.name)) {
      const auto known = fused_launches().find(f.name);
      if (known == fused_launches().end()) unknown_fused_ops.insert(f.name);
      ++fused_ops[where(f)];
      if (known != fused_launches().end()) kernels[where(f)] += known->second;
      launches = true;
    } else if (!f.kernel_below) {
      const bool view = no_kernel_ops().count(f.name) > 0;
      ++(view ? views : kernels)[where(f)];
      launches = !view;
    }
  }
  stack.pop_back();
  if (launches && !stack.empty()) stack.back().kernel_below = true;
}

int64_t total(const std::map<std::string, int64_t>& counts) {
  int64_t n = 0;
  for (const auto& [name, count] : counts) n += count;
  return n;
}

struct Phase {
  int64_t kernels = 0, fused_ops = 0;
};

// The counts since the last call, listed on stderr when asked; then cleared.
Phase end_phase(const char* phase, bool list) {
  std::lock_guard<std::mutex> lock(mutex);
  if (list) {
    std::fprintf(stderr, "%s: %lld kernels (%lld calls of fused ops among them), %lld views or allocations\n",
                 phase, (long long)total(kernels), (long long)total(fused_ops), (long long)total(views));
    for (const auto& [name, count] : kernels) std::fprintf(stderr, "  %5lld  %s\n", (long long)count, name.c_str());
  }
  const Phase p{total(kernels), total(fused_ops)};
  kernels.clear();
  fused_ops.clear();
  views.clear();
  return p;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  at::set_num_threads(1);
  torch::manual_seed(0);
  const compressm::bench::ModelFlags& m = o.model;
  compressm::nn::LruModel model(m.model());
  model->train();
  const torch::Tensor x = torch::rand({m.batch, m.length, m.input});
  const torch::Tensor labels = torch::randint(0, m.classes, {m.batch}, torch::kLong);

  Phase forward, backward;
  for (int step = 0; step < 2; ++step) {
    const bool counted = step == 1;
    for (const torch::Tensor& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    const at::CallbackHandle handle =
        counted ? at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end).needsInputs(o.list))
                : at::CallbackHandle();
    const torch::Tensor loss = compressm::nn::classification_loss(model->forward(x), labels).first;
    if (counted) forward = end_phase("forward (with the loss)", o.list);
    loss.backward();
    if (counted) {
      backward = end_phase("backward", o.list);
      at::removeCallback(handle);
    }
  }
  if (!unknown_fused_ops.empty()) {
    std::string names;
    for (const std::string& name : unknown_fused_ops) names += " " + name;
    throw std::logic_error("fused ops missing from fused_launches() (how many CUDA kernels each launches):" + names);
  }
  std::fprintf(stderr,
               "compressm: %lld block(s) N=%lld H=%lld B=%lld L=%lld %s, block ops %s: %lld kernels forward, "
               "%lld backward (%lld calls of fused ops), AdamW apart\n",
               (long long)m.blocks, (long long)m.state, (long long)m.hidden, (long long)m.batch, (long long)m.length,
               m.precision.c_str(), m.block_ops.c_str(), (long long)forward.kernels, (long long)backward.kernels,
               (long long)(forward.fused_ops + backward.fused_ops));
  std::cout << "{\"bench\": \"op_count\", \"forward_kernels\": " << forward.kernels
            << ", \"backward_kernels\": " << backward.kernels
            << ", \"fused_ops\": " << forward.fused_ops + backward.fused_ops << ", \"precision\": \"" << m.precision
            << "\", \"block_ops\": \"" << m.block_ops << "\", \"num_blocks\": " << m.blocks
            << ", \"state_dim\": " << m.state << ", \"hidden_dim\": " << m.hidden << ", \"batch_size\": " << m.batch
            << ", \"length\": " << m.length << ", \"dropout\": " << m.dropout << "}" << std::endl;
  return 0;
} catch (const c10::Error& e) {
  std::fprintf(stderr, "bench_op_count: error: %s\n", e.what_without_backtrace());
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_op_count: error: %s\n", e.what());
  return 2;
}
