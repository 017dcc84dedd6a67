// The CPU emulation of CUDA (cuda_emulator/cuda_emulator.h) has the
// semantics the kernels rely on: barriers, shuffles, coordinates, launch
// errors; and it reports the bugs it can see instead of hiding them.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "cuda_emulator.h"

namespace {

using compressm::cuda_emulator::launch;

__global__ void rotate_through_shared(const int* in, int* out) {
  __shared__ int values[64];
  values[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = values[(threadIdx.x + 1) % blockDim.x];
}

TEST(CudaEmulator, BarrierMakesEveryThreadsWriteVisible) {
  std::vector<int> in(128), out(128, -1);
  std::iota(in.begin(), in.end(), 100);
  launch(dim3(2), dim3(64), [&] { rotate_through_shared(in.data(), out.data()); });
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 64; ++t) EXPECT_EQ(out[b * 64 + t], in[b * 64 + (t + 1) % 64]) << b << " " << t;
}

__global__ void without_barrier(const int* in, int* out) {
  __shared__ int values[64];
  values[threadIdx.x] = in[threadIdx.x];
  out[threadIdx.x] = values[(threadIdx.x + 1) % 64];
}

TEST(CudaEmulator, MissingBarrierReadsStaleSharedMemory) {
  // A race on the device. Here the threads run in a shuffled order: some read
  // their neighbour's slot before the neighbour wrote it, i.e. what the
  // previous launch left (the emulator does not paper over a missing
  // __syncthreads); with the barrier every thread reads the new value.
  std::vector<int> first(64, 1), second(64, 2), out(64, 0);
  launch(dim3(1), dim3(64), [&] { without_barrier(first.data(), out.data()); });
  launch(dim3(1), dim3(64), [&] { without_barrier(second.data(), out.data()); });
  const auto stale = std::count(out.begin(), out.end(), 1), fresh = std::count(out.begin(), out.end(), 2);
  EXPECT_GT(stale, 0);
  EXPECT_GT(fresh, 0);
  EXPECT_EQ(stale + fresh, 64);
}

__global__ void warp_shuffles(const float* in, float* xor_sums, float* down_sums, int* neighbours) {
  const int i = threadIdx.x;
  float a = in[i], b = in[i];
  for (int offset = 16; offset > 0; offset /= 2) a += __shfl_xor_sync(0xffffffffu, a, offset);
  for (int offset = 16; offset > 0; offset /= 2) b += __shfl_down_sync(0xffffffffu, b, offset);
  xor_sums[i] = a;
  down_sums[i] = b;
  neighbours[i] = __shfl_down_sync(0xffffffffu, i, 1);
}

TEST(CudaEmulator, ShufflesReadTheSourceLanesValueAtThatShuffle) {
  std::vector<float> in(64), xor_sums(64), down_sums(64);
  std::vector<int> neighbours(64);
  for (int i = 0; i < 64; ++i) in[i] = static_cast<float>(i * i % 17);
  launch(dim3(1), dim3(64), [&] { warp_shuffles(in.data(), xor_sums.data(), down_sums.data(), neighbours.data()); });
  for (int w = 0; w < 2; ++w) {
    float sum = 0;
    for (int l = 0; l < 32; ++l) sum += in[w * 32 + l];
    for (int l = 0; l < 32; ++l) EXPECT_EQ(xor_sums[w * 32 + l], sum) << "xor: every lane has the warp's sum";
    EXPECT_EQ(down_sums[w * 32], sum) << "down: lane 0 has the warp's sum";
    for (int l = 0; l < 32; ++l)  // out of range: a lane keeps its own value
      EXPECT_EQ(neighbours[w * 32 + l], l < 31 ? w * 32 + l + 1 : w * 32 + l);
  }
}

__global__ void coordinates(int* out) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  out[block * (blockDim.x * blockDim.y * blockDim.z) + thread] += 1;
}

TEST(CudaEmulator, EveryThreadOfAThreeDimensionalGridRunsOnce) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  std::vector<int> out(12 * 24, 0);
  launch(grid, block, [&] { coordinates(out.data()); });
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], 1) << i;
}

__global__ void divergent_barrier() {
  if (threadIdx.x < 32) __syncthreads();
}
__global__ void barrier_against_shuffle(float* out) {
  float v = 1.f;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else __syncthreads();
  out[threadIdx.x] = v;
}
__global__ void partial_mask(float* out) { out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.f, 1); }
__global__ void incomplete_warp(float* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1); }
__global__ void throws_in_one_thread() {
  if (blockIdx.x == 1 && threadIdx.x == 5) throw std::runtime_error("thread 5 of block 1");
}

TEST(CudaEmulator, ReportsDivergentBarriersAndMisusedShuffles) {
  std::vector<float> out(64);
  EXPECT_THROW(launch(dim3(1), dim3(64), [&] { divergent_barrier(); }), std::logic_error);
  EXPECT_THROW(launch(dim3(1), dim3(32), [&] { barrier_against_shuffle(out.data()); }), std::logic_error);
  EXPECT_THROW(launch(dim3(1), dim3(32), [&] { partial_mask(out.data()); }), std::logic_error);
  EXPECT_THROW(launch(dim3(1), dim3(48), [&] { incomplete_warp(out.data()); }), std::logic_error);
  try {
    launch(dim3(2), dim3(32), [&] { throws_in_one_thread(); });
    FAIL() << "the thread's exception was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "thread 5 of block 1");
  }
  // A launch after a failed one runs normally.
  std::vector<int> in(64, 3), ints(64, 0);
  launch(dim3(1), dim3(64), [&] { rotate_through_shared(in.data(), ints.data()); });
  EXPECT_EQ(ints[10], 3);
}

__global__ void mixed_kinds(float* out) {
  out[threadIdx.x] = threadIdx.x < 16 ? __shfl_xor_sync(0xffffffffu, 1.f, 1) : __shfl_down_sync(0xffffffffu, 1.f, 1);
}
__global__ void narrow_width(float* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1, 16); }
__global__ void far_down(float* out) { out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.f, 40); }

TEST(CudaEmulator, ReportsLanesAtDifferentShufflesAndUnemulatedOnes) {
  std::vector<float> out(32);
  EXPECT_THROW(launch(dim3(1), dim3(32), [&] { mixed_kinds(out.data()); }), std::logic_error);
  EXPECT_THROW(launch(dim3(1), dim3(32), [&] { narrow_width(out.data()); }), std::logic_error);
  EXPECT_THROW(launch(dim3(1), dim3(32), [&] { far_down(out.data()); }), std::logic_error);
  EXPECT_THROW(__shfl_xor_sync(0xffffffffu, 1.f, 1), std::logic_error) << "outside a launch";
  EXPECT_THROW(__syncthreads(), std::logic_error) << "outside a launch";
}

__global__ void record_order(int* next, int* order) { order[(*next)++] = static_cast<int>(blockIdx.x); }

TEST(CudaEmulator, BlocksRunInAShuffledOrder) {
  std::vector<int> order(64, -1);
  int next = 0;
  launch(dim3(64), dim3(1), [&] { record_order(&next, order.data()); });
  std::vector<int> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int b = 0; b < 64; ++b) EXPECT_EQ(sorted[b], b) << "every block once";
  EXPECT_FALSE(std::is_sorted(order.begin(), order.end()));
}

#if defined(__SANITIZE_ADDRESS__)
__global__ void past_shared_end(float* out) {
  __shared__ float values[32];
  values[threadIdx.x] = 1.f;
  __syncthreads();
  out[threadIdx.x] = values[threadIdx.x + 1];  // thread 31 reads past the end
}

// Built with AddressSanitizer, a kernel's read past a __shared__ array ends
// the process with ASan's report (as compute-sanitizer would on the device).
TEST(CudaEmulatorDeathTest, AddressSanitizerReportsAReadPastASharedArray) {
  std::vector<float> out(32);
  EXPECT_DEATH(launch(dim3(1), dim3(32), [&] { past_shared_end(out.data()); }), "global-buffer-overflow");
}
#endif

__global__ void count(int* out) { out[0] += 1; }

TEST(CudaEmulator, InvalidLaunchShapesSetTheLastErrorAndRunNothing) {
  int runs = 0;
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (const auto& [grid, block] : std::vector<std::pair<dim3, dim3>>{
           {dim3(1), dim3(2048)}, {dim3(1), dim3(32, 32, 2)}, {dim3(1, 70000), dim3(32)}, {dim3(0), dim3(32)},
           {dim3(1), dim3(0)}}) {
    launch(grid, block, [&] { count(&runs); });
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "reading the error clears it";
  }
  EXPECT_EQ(runs, 0);
  launch(dim3(1, 65535), dim3(1), [&] { count(&runs); });
  EXPECT_EQ(runs, 65535);
}

}  // namespace
