// The fiber scheduler of cuda_emulator.h.
#include "cuda_emulator.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

// Under AddressSanitizer (the tests build the emulator and the kernels with
// it: out-of-bounds reads and writes of device arrays and of __shared__
// arrays are reported, as compute-sanitizer would on the device) every switch
// between stacks is announced, so that ASan knows which stack is live.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define COMPRESSM_ASAN_FIBERS 1
#endif

#if defined(COMPRESSM_ASAN_FIBERS)
// LibTorch's process-lifetime allocations are not this test's leaks.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace compressm::cuda_emulator {
namespace {

enum class State { kRunnable, kAtBarrier, kAtShuffle, kDone };

struct Fiber {
  ucontext_t context;
  uint3 index;
  int linear = 0;
  State state = State::kRunnable;
  long long barriers = 0;  // __syncthreads passed
  // The value offered at the current shuffle, by parity of the shuffle count:
  // a lane may offer its next value before a slower lane of its warp has read
  // this one.
  uint64_t offered[2] = {0, 0};
  long long shuffles = 0;
  ShuffleKind kind = ShuffleKind::kXor;  // of the shuffle it waits at
};

// A fiber stack with a guard page below it.
class Stack {
 public:
  explicit Stack(size_t bytes) : size_(bytes + page()) {
    memory_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory_ == MAP_FAILED) throw std::runtime_error("cuda_emulator: cannot map a fiber stack");
    mprotect(memory_, page(), PROT_NONE);
  }
  ~Stack() { munmap(memory_, size_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  char* base() const { return static_cast<char*>(memory_) + page(); }
  size_t size() const { return size_ - page(); }

 private:
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
  void* memory_;
  size_t size_;
};

constexpr size_t kStackBytes = 256 * 1024;

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<Stack>> stacks;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::exception_ptr failure;
  bool active = false;
  // Runnable threads run in an order shuffled anew at every round (seeded by
  // the launch count: reproducible), so that a result that depends on the
  // order — a race on the device — shows up as a wrong result here.
  std::mt19937 order_rng;
  std::vector<size_t> order;
};

Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

// swapcontext(from, to), announced to ASan: `to_stack` / `to_size` are the
// stack being entered (the scheduler's: its saved bounds).
struct StackBounds {
  const void* bottom = nullptr;
  size_t size = 0;
};
StackBounds main_stack;

void switch_context(ucontext_t* from, ucontext_t* to, const void* to_bottom, size_t to_size, bool from_exits) {
#if defined(COMPRESSM_ASAN_FIBERS)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &fake_stack, to_bottom, to_size);
  swapcontext(from, to);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
  (void)to_bottom;
  (void)to_size;
  (void)from_exits;
  swapcontext(from, to);
#endif
}

cudaError_t last_error = cudaSuccess;
long long launch_count = 0;
long long thread_count = 0;  // threads launched so far

void fiber_entry() {
  Scheduler& s = scheduler();
#if defined(COMPRESSM_ASAN_FIBERS)
  // Entered from the scheduler: learn its stack's bounds for the switches back.
  __sanitizer_finish_switch_fiber(nullptr, &main_stack.bottom, &main_stack.size);
#endif
  try {
    (*s.body)();
  } catch (...) {
    if (!s.failure) s.failure = std::current_exception();
  }
  s.current->state = State::kDone;
  // Back to the scheduler for good (not through uc_link, so that ASan hears of it).
  switch_context(&s.current->context, &s.main, main_stack.bottom, main_stack.size, /*from_exits=*/true);
}

// Back to the scheduler; returns when this fiber is resumed.
void yield(State state) {
  Scheduler& s = scheduler();
  if (!s.active) throw std::logic_error("cuda_emulator: a device function called outside a launch");
  Fiber* self = s.current;
  self->state = state;
  switch_context(&self->context, &s.main, main_stack.bottom, main_stack.size, /*from_exits=*/false);
}

std::string where(const Fiber& f) {
  return "block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
         std::to_string(blockIdx.z) + ") thread (" + std::to_string(f.index.x) + "," + std::to_string(f.index.y) +
         "," + std::to_string(f.index.z) + ")";
}

// Releases the threads waiting at a barrier or shuffle that every thread
// concerned has reached. Returns whether any was released.
bool release(Scheduler& s) {
  bool released = false;
  // __syncthreads: every thread that has not exited is there.
  bool all_at_barrier = true, any_at_barrier = false;
  for (const Fiber& f : s.fibers) {
    if (f.state == State::kDone) continue;
    if (f.state != State::kAtBarrier) all_at_barrier = false;
    else any_at_barrier = true;
  }
  if (any_at_barrier && all_at_barrier) {
    for (Fiber& f : s.fibers)
      if (f.state == State::kAtBarrier) f.state = State::kRunnable;
    released = true;
  }
  // Shuffles: the 32 lanes of a warp, all at the shuffle.
  for (size_t first = 0; first < s.fibers.size(); first += 32) {
    const size_t end = std::min(first + 32, s.fibers.size());
    bool all = true, any = false;
    for (size_t k = first; k < end; ++k) {
      if (s.fibers[k].state == State::kAtShuffle) any = true;
      else all = false;
    }
    if (!any) continue;
    if (end - first < 32)
      throw std::logic_error("cuda_emulator: a warp shuffle in an incomplete warp (" + where(s.fibers[first]) + ")");
    if (!all) {
      for (size_t k = first; k < end; ++k)
        if (s.fibers[k].state == State::kDone)
          throw std::logic_error("cuda_emulator: a warp shuffle after a lane of its warp exited (" +
                                 where(s.fibers[k]) + ")");
      continue;
    }
    for (size_t k = first + 1; k < end; ++k)
      if (s.fibers[k].shuffles != s.fibers[first].shuffles || s.fibers[k].kind != s.fibers[first].kind)
        throw std::logic_error("cuda_emulator: lanes of a warp at different shuffles (" + where(s.fibers[first]) +
                               " and " + where(s.fibers[k]) + ")");
    for (size_t k = first; k < end; ++k) s.fibers[k].state = State::kRunnable;
    released = true;
  }
  return released;
}

// The device's limits on a launch's shape (compute capability 9.0).
bool valid_configuration(dim3 grid, dim3 block) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535 &&
         threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64;
}

void run_block(Scheduler& s) {
  for (Fiber& f : s.fibers) {
    f.state = State::kRunnable;
    f.barriers = f.shuffles = 0;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = s.stacks[static_cast<size_t>(f.linear)]->base();
    f.context.uc_stack.ss_size = s.stacks[static_cast<size_t>(f.linear)]->size();
    f.context.uc_link = &s.main;
    makecontext(&f.context, fiber_entry, 0);
  }
  s.order.resize(s.fibers.size());
  for (size_t k = 0; k < s.order.size(); ++k) s.order[k] = k;
  size_t done = 0;
  while (done < s.fibers.size()) {
    bool ran = false;
    std::shuffle(s.order.begin(), s.order.end(), s.order_rng);
    for (const size_t k : s.order) {
      Fiber& f = s.fibers[k];
      if (f.state != State::kRunnable) continue;
      s.current = &f;
      threadIdx = f.index;
      const Stack& stack = *s.stacks[static_cast<size_t>(f.linear)];
      switch_context(&s.main, &f.context, stack.base(), stack.size(), /*from_exits=*/false);
      ran = true;
      if (s.failure) std::rethrow_exception(s.failure);
    }
    done = 0;
    for (const Fiber& f : s.fibers) done += f.state == State::kDone ? 1 : 0;
    if (done == s.fibers.size()) break;
    if (!release(s) && !ran) {
      std::string states;
      for (const Fiber& f : s.fibers) {
        if (f.state == State::kDone) continue;
        states = where(f) + (f.state == State::kAtBarrier ? " waits at __syncthreads" : " waits at a shuffle");
        break;
      }
      throw std::logic_error("cuda_emulator: deadlock, divergent barriers or shuffles (" + states + ")");
    }
  }
  // Barrier counts must agree among the threads (a divergent __syncthreads
  // that happened to be released together is still a bug).
  for (const Fiber& f : s.fibers)
    if (f.barriers != s.fibers.front().barriers)
      throw std::logic_error("cuda_emulator: threads passed different numbers of __syncthreads (" + where(f) + ")");
}

}  // namespace

void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  if (s.active) throw std::logic_error("cuda_emulator: a launch inside a kernel");
  if (!valid_configuration(grid, block)) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  ++launch_count;
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  thread_count += static_cast<long long>(threads) * grid.x * grid.y * grid.z;
  while (s.stacks.size() < threads) s.stacks.push_back(std::make_unique<Stack>(kStackBytes));
  s.fibers.assign(threads, Fiber{});
  for (unsigned int z = 0, k = 0; z < block.z; ++z)
    for (unsigned int y = 0; y < block.y; ++y)
      for (unsigned int x = 0; x < block.x; ++x, ++k) {
        s.fibers[k].index = {x, y, z};
        s.fibers[k].linear = static_cast<int>(k);
      }
  s.body = &body;
  s.failure = nullptr;
  s.order_rng.seed(static_cast<std::mt19937::result_type>(launch_count));
  s.active = true;
  blockDim = block;
  gridDim = grid;
  // The blocks in a shuffled order: a result that depends on it (blocks
  // that read what other blocks write, without a later launch between) shows.
  std::vector<uint3> blocks;
  blocks.reserve(static_cast<size_t>(grid.x) * grid.y * grid.z);
  for (unsigned int z = 0; z < grid.z; ++z)
    for (unsigned int y = 0; y < grid.y; ++y)
      for (unsigned int x = 0; x < grid.x; ++x) blocks.push_back({x, y, z});
  std::shuffle(blocks.begin(), blocks.end(), s.order_rng);
  try {
    for (const uint3& b : blocks) {
      blockIdx = b;
      run_block(s);
    }
  } catch (...) {
    s.active = false;
    throw;
  }
  s.active = false;
}

int lane_id() {
  Scheduler& s = scheduler();
  if (!s.active) throw std::logic_error("cuda_emulator: a device function called outside a launch");
  return s.current->linear % 32;
}

uint64_t exchange(ShuffleKind kind, unsigned int mask, int width, uint64_t value, int source,
                  bool keep_own_if_out_of_range) {
  Scheduler& s = scheduler();
  if (!s.active) throw std::logic_error("cuda_emulator: a device function called outside a launch");
  Fiber* self = s.current;
  if (mask != 0xffffffffu || width != 32)
    throw std::logic_error("cuda_emulator: only whole-warp shuffles (mask 0xffffffff, width 32) are emulated");
  if (kind == ShuffleKind::kDown && source < 0)
    throw std::logic_error("cuda_emulator: __shfl_down_sync with a delta above 31 is not emulated");
  const int parity = static_cast<int>(self->shuffles & 1);
  self->offered[parity] = value;
  self->kind = kind;
  yield(State::kAtShuffle);
  // Every lane of the warp has offered its value for this shuffle.
  const int lane = self->linear % 32;
  self->shuffles += 1;
  if (source < 0 || source >= 32) {
    if (keep_own_if_out_of_range) return value;
    source &= 31;
  }
  const Fiber& partner = s.fibers[static_cast<size_t>(self->linear - lane + source)];
  return partner.offered[parity];
}

long long launches() { return launch_count; }
long long threads_launched() { return thread_count; }

}  // namespace compressm::cuda_emulator

void __syncthreads() {
  auto& s = compressm::cuda_emulator::scheduler();
  compressm::cuda_emulator::yield(compressm::cuda_emulator::State::kAtBarrier);
  s.current->barriers += 1;
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = compressm::cuda_emulator::last_error;
  compressm::cuda_emulator::last_error = cudaSuccess;
  return error;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (device != 0 || attribute != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  *value = 132;
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
  }
  return "unknown error";
}
