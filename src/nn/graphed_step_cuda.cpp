// graphed_step.h for CUDA builds.
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <array>
#include <chrono>
#include <cmath>
#include <deque>
#include <iostream>
#include <map>
#include <vector>

#include "nn/cuda_ops.h"
#include "nn/fused_ops.h"
#include "nn/graphed_step.h"
#include "nn/lru_optimizer.h"

namespace compressm::nn {
namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

// The parameters of one AdamW group that have taken the same number of steps
// (after a reduction with a reset optimiser state, the new LRU tensors start
// at 0 while D and the dense layers go on): one flat buffer each.
struct Bucket {
  size_t group = 0;
  int64_t steps = 0;  // AdamW steps these parameters have taken
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<torch::Tensor> params;
  std::vector<int64_t> starts;  // params[k] is elements [starts[k], starts[k + 1]) of p, m, v
  torch::Tensor p, m, v;        // flat parameters, first and second moments
  // The gradient tensors autograd allocated during the capture (graph memory
  // pool): every replay writes them. Owned here, and put back as the
  // parameters' .grad after an eager step (which replaces them).
  std::vector<torch::Tensor> captured_grads;
  // {3} on the device, a view of Impl::device_scalars: 1 - lr wd,
  // lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)
  torch::Tensor scalars;
};

AdamWOptions& options_of(torch::optim::AdamW& optimizer, size_t group) {
  return static_cast<AdamWOptions&>(optimizer.param_groups()[group].options());
}

// What one submitted step needs until it is collected: its batch's and its
// AdamW scalars' page-locked staging buffers (an asynchronous copy reads them
// after submit() returns) and where its loss and correct count come back.
struct Slot {
  torch::Tensor pinned_x, pinned_y;
  torch::Tensor host_scalars;  // every bucket's AdamW scalars (Impl::set_scalars)
  torch::Tensor host_out;      // {2} float64, page-locked: loss, correct count
  // Around a replayed step on its stream (with timing: collected_seconds):
  // before its input copies, and after the copy into host_out.
  at::cuda::CUDAEvent started{cudaEventDefault}, done{cudaEventDefault};
  bool ready = false;  // values already read (eager and capture steps)
  double loss = 0;
  int64_t correct = 0;
  double seconds = 0;
};

torch::Device cuda_device_of(const LruModel& model) {
  TORCH_CHECK(model->device().is_cuda(), "CUDA graphs: the model must be on a CUDA device");
  return model->device();
}

}  // namespace

bool graphs_compiled() { return true; }

struct GraphedTrainStep::Impl {
  LruModel model;
  torch::optim::AdamW& optimizer;
  torch::Device device;
  std::vector<Bucket> buckets;
  c10::cuda::CUDAStream side;  // warm-up and capture run here (capture needs a non-default stream)
  at::cuda::CUDAGraph graph;
  torch::Tensor static_x, static_y;
  torch::Tensor out;             // {2} float64 on the device: loss, correct count
  torch::Tensor device_scalars;  // every bucket's AdamW scalars (set_scalars)
  std::array<Slot, kMaxPending> slots;  // submitted step k uses slots[k % kMaxPending]
  std::deque<Slot*> pending;            // submitted, not yet collected, oldest first
  cudaStream_t pending_stream = nullptr;  // the stream the pending replays were queued on
  double collected_seconds = 0;
  int64_t calls = 0;
  std::vector<int64_t> last_x_sizes;  // of the last eager step: the graph is captured for that shape
  bool captured = false;

  Impl(LruModel m, torch::optim::AdamW& o)
      : model(std::move(m)),
        optimizer(o),
        device(cuda_device_of(model)),
        side(c10::cuda::getStreamFromPool(false, device.index())) {
    const c10::cuda::CUDAGuard guard(device);
    out = torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    flatten();
  }

  void flatten() {
    torch::NoGradGuard no_grad;
    auto& states = optimizer.state();
    std::map<std::pair<size_t, int64_t>, size_t> index;
    for (size_t group = 0; group < optimizer.param_groups().size(); ++group) {
      const AdamWOptions& o = options_of(optimizer, group);
      TORCH_CHECK(!o.amsgrad(), "CUDA graphs: AdamW with amsgrad is not supported");
      for (const torch::Tensor& p : optimizer.param_groups()[group].params()) {
        TORCH_CHECK(p.device() == device && p.scalar_type() == torch::kFloat,
                    "CUDA graphs: every parameter must be a float32 tensor on the model's device");
        const auto found = states.find(optimizer_key(p));
        const int64_t steps =
            found == states.end() || !found->second ? 0 : static_cast<AdamWParamState&>(*found->second).step();
        const auto [entry, fresh] = index.emplace(std::make_pair(group, steps), buckets.size());
        if (fresh) {
          Bucket b;
          b.group = group;
          b.steps = steps;
          b.beta1 = std::get<0>(o.betas());
          b.beta2 = std::get<1>(o.betas());
          b.eps = o.eps();
          buckets.push_back(std::move(b));
        }
        buckets[entry->second].params.push_back(p);
      }
    }
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
    for (Bucket& b : buckets) {
      int64_t total = 0;
      for (const torch::Tensor& p : b.params) total += p.numel();
      b.p = torch::empty({total}, f32);
      b.m = torch::zeros({total}, f32);
      b.v = torch::zeros({total}, f32);
      int64_t offset = 0;
      b.starts = {0};
      for (torch::Tensor& p : b.params) {
        const int64_t n = p.numel();
        auto view = [&](const torch::Tensor& flat) { return flat.narrow(0, offset, n).view(p.sizes()); };
        view(b.p).copy_(p);
        auto& slot = states[optimizer_key(p)];
        if (slot) {
          auto& s = static_cast<AdamWParamState&>(*slot);
          if (s.exp_avg().defined()) view(b.m).copy_(s.exp_avg());
          if (s.exp_avg_sq().defined()) view(b.v).copy_(s.exp_avg_sq());
        } else {
          slot = std::make_unique<AdamWParamState>();
          static_cast<AdamWParamState&>(*slot).step(0);
        }
        auto& s = static_cast<AdamWParamState&>(*slot);
        s.exp_avg(view(b.m));
        s.exp_avg_sq(view(b.v));
        p.set_data(view(b.p));
        p.mutable_grad() = torch::Tensor();
        offset += n;
        b.starts.push_back(offset);
      }
    }
    // Every bucket's scalars in one device buffer, filled from one page-locked
    // host buffer by one asynchronous copy per step.
    const int64_t count = 3 * static_cast<int64_t>(buckets.size());
    device_scalars = torch::zeros({count}, f32);
    for (Slot& slot : slots) {
      slot.host_scalars = torch::zeros({count}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true));
      slot.host_out = torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).pinned_memory(true));
    }
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i].scalars = device_scalars.narrow(0, 3 * i, 3);
  }

  // Learning rate, weight decay and bias corrections of the coming step, on
  // the current stream (a copy from host memory: never inside a capture).
  // The slot's host buffer is free: the step that used it last was collected.
  void set_scalars(Slot& slot) {
    write_host_scalars(slot);
    device_scalars.copy_(slot.host_scalars, /*non_blocking=*/true);
  }
  void write_host_scalars(Slot& slot) {
    float* host = slot.host_scalars.data_ptr<float>();
    for (const Bucket& b : buckets) {
      const AdamWOptions& o = options_of(optimizer, b.group);
      const double t = static_cast<double>(b.steps + 1), lr = o.lr();
      *host++ = static_cast<float>(1.0 - lr * o.weight_decay());
      *host++ = static_cast<float>(lr / (1.0 - std::pow(b.beta1, t)));
      *host++ = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b.beta2, t)));
    }
  }

  // The step itself: what is captured, and what the eager steps run.
  void body(const torch::Tensor& x, const torch::Tensor& y) {
    for (Bucket& b : buckets)
      for (torch::Tensor& p : b.params) p.mutable_grad() = torch::Tensor();  // autograd hands its tensors over
    const auto [loss, stats] = classification_loss(model->forward(x), y);
    loss.backward();
    torch::NoGradGuard no_grad;
    // One kernel per bucket (kernels/fused_ops.h's adamw_update).
    for (Bucket& b : buckets) {
      std::vector<torch::Tensor> grads;
      for (const torch::Tensor& p : b.params) grads.push_back(p.grad());
      cuda_ops::adamw_step(b.p, b.m, b.v, grads, b.starts, b.scalars, b.beta1, b.beta2, b.eps);
    }
    out.copy_(stats);
  }

  // target <- source, where source is on the host or the device. A host
  // source is copied into a page-locked buffer, then to the device without
  // blocking the host; the buffer is free again once the step is collected.
  // In two halves: stage() on the host (a host source into the page-locked
  // buffer), then upload() on the stream.
  static void stage(torch::Tensor& pinned, const torch::Tensor& source) {
    if (!source.device().is_cpu()) return;
    if (!pinned.defined() || pinned.sizes() != source.sizes() || pinned.scalar_type() != source.scalar_type())
      pinned = torch::empty(source.sizes(), source.options().pinned_memory(true));
    pinned.copy_(source);
  }
  static void upload(torch::Tensor& target, const torch::Tensor& pinned, const torch::Tensor& source) {
    if (source.device().is_cpu())
      target.copy_(pinned, /*non_blocking=*/true);
    else
      target.copy_(source);
  }

  void eager(Slot& slot, const torch::Tensor& host_or_device_x, const torch::Tensor& host_or_device_y) {
    const torch::Tensor x = host_or_device_x.to(device), y = host_or_device_y.to(device);
    c10::cuda::device_synchronize();  // x, y and earlier steps were queued on another stream
    {
      const c10::cuda::CUDAStreamGuard guard(side);
      set_scalars(slot);
      body(x, y);
    }
    c10::cuda::device_synchronize();
  }

  void capture(Slot& slot, const torch::Tensor& x, const torch::Tensor& y) {
    static_x = x.to(device).clone();
    static_y = y.to(device).clone();
    c10::cuda::device_synchronize();
    {
      const c10::cuda::CUDAStreamGuard guard(side);
      set_scalars(slot);
      c10::cuda::device_synchronize();
      graph.capture_begin();
      try {
        body(static_x, static_y);
      } catch (...) {
        try {
          graph.capture_end();
        } catch (...) {
        }
        throw;
      }
      graph.capture_end();
    }
    for (Bucket& b : buckets) {
      b.captured_grads.clear();
      for (const torch::Tensor& p : b.params) b.captured_grads.push_back(p.grad());
    }
    c10::cuda::device_synchronize();
    graph.replay();  // capturing does not run the step: run it now
  }

  // After an eager step once the graph exists: .grad back to the tensors the
  // replays write (the eager step's gradients are spent).
  void restore_captured_gradients() {
    for (Bucket& b : buckets)
      for (size_t k = 0; k < b.params.size() && k < b.captured_grads.size(); ++k)
        b.params[k].mutable_grad() = b.captured_grads[k];
  }

  void count_step() {
    for (Bucket& b : buckets) {
      b.steps += 1;
      for (const torch::Tensor& p : b.params)
        static_cast<AdamWParamState&>(*optimizer.state().at(optimizer_key(p))).step(b.steps);
    }
  }
};

GraphedTrainStep::GraphedTrainStep(LruModel model, torch::optim::AdamW& optimizer)
    : impl_(std::make_unique<Impl>(std::move(model), optimizer)) {}

GraphedTrainStep::~GraphedTrainStep() {
  // Submitted steps still read the page-locked buffers and the graph: let them finish.
  if (impl_ && !impl_->pending.empty()) {
    try {
      c10::cuda::device_synchronize();
    } catch (const std::exception& e) {
      std::cerr << "GraphedTrainStep: " << e.what() << "\n";
    }
  }
}

bool GraphedTrainStep::captured() const { return impl_->captured; }

std::pair<double, int64_t> GraphedTrainStep::step(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(impl_->pending.empty(), "GraphedTrainStep::step: collect the submitted steps first");
  submit(x, y);
  return collect();
}

int GraphedTrainStep::pending() const { return static_cast<int>(impl_->pending.size()); }

double GraphedTrainStep::collected_seconds() const { return impl_->collected_seconds; }

void GraphedTrainStep::submit(const torch::Tensor& x, const torch::Tensor& y) {
  Impl& s = *impl_;
  TORCH_CHECK(s.pending.size() < static_cast<size_t>(kMaxPending), "GraphedTrainStep: ", kMaxPending,
              " steps are already submitted and not collected");
  const c10::cuda::CUDAGuard guard(s.device);
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(s.device.index());
  // The static inputs, the scalars and `out` are ordered by the stream alone.
  TORCH_CHECK(s.pending.empty() || stream.stream() == s.pending_stream,
              "GraphedTrainStep: a step is pending on another CUDA stream");
  Slot& slot = s.slots[static_cast<size_t>(s.calls % kMaxPending)];
  slot.ready = false;
  const auto wall_start = std::chrono::steady_clock::now();
  const bool same_shape = s.static_x.defined() && x.sizes() == s.static_x.sizes() && y.sizes() == s.static_y.sizes();
  if (s.captured && same_shape) {
    // The host's part first, so that the timed span is the device's.
    s.write_host_scalars(slot);
    Impl::stage(slot.pinned_x, x);
    Impl::stage(slot.pinned_y, y);
    slot.started.record(stream);
    s.device_scalars.copy_(slot.host_scalars, /*non_blocking=*/true);
    Impl::upload(s.static_x, slot.pinned_x, x);
    Impl::upload(s.static_y, slot.pinned_y, y);
    s.graph.replay();
    // The result comes back without blocking; collect() waits for the event.
    slot.host_out.copy_(s.out, /*non_blocking=*/true);
    slot.done.record(stream);
    s.pending_stream = stream.stream();
  } else {
    if (!s.captured && s.calls >= kEagerSteps && x.sizes().vec() == s.last_x_sizes) {
      // A failed capture leaves the CUDA generator expecting one (dropout would
      // then fail in every eager step), so it ends the run with a way out.
      try {
        s.capture(slot, x, y);
      } catch (const std::exception& e) {
        s.graph.reset();
        TORCH_CHECK(false, "CUDA graph capture of the training step failed (", e.what(),
                    "); train without graphs: --set training.cuda_graphs=false");
      }
      s.captured = true;
    } else {
      s.eager(slot, x, y);
      if (s.captured) s.restore_captured_gradients();
      s.last_x_sizes = x.sizes().vec();
    }
    const torch::Tensor host = s.out.to(torch::kCPU);  // waits for the step
    slot.loss = host.data_ptr<double>()[0];
    slot.correct = static_cast<int64_t>(host.data_ptr<double>()[1]);
    slot.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    slot.ready = true;
  }
  s.count_step();
  ++s.calls;
  s.pending.push_back(&slot);
}

std::pair<double, int64_t> GraphedTrainStep::collect() {
  Impl& s = *impl_;
  TORCH_CHECK(!s.pending.empty(), "GraphedTrainStep: no submitted step to collect");
  Slot& slot = *s.pending.front();
  if (!slot.ready) {
    slot.done.synchronize();
    const double* values = slot.host_out.data_ptr<double>();
    slot.loss = values[0];
    slot.correct = static_cast<int64_t>(values[1]);
    slot.seconds = 1e-3 * slot.started.elapsed_time(slot.done);
    slot.ready = true;
  }
  s.collected_seconds = slot.seconds;
  s.pending.pop_front();
  return {slot.loss, slot.correct};
}

}  // namespace compressm::nn
