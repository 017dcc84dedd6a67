// A CPU emulation of the part of CUDA that src/kernels/cuda uses, so that the
// kernels' own source (the .cu files, unchanged) compiles with g++ and runs
// here, in CI, against the CPU references — most sessions of this project
// have no GPU, and a kernel's first run on one should not be its first test.
//
// What it emulates:
//  * __global__ / __device__ / __shared__ / __launch_bounds__ and friends;
//    threadIdx, blockIdx, blockDim, gridDim; dim3, float2, uint2, uint4, __nv_bfloat16(2)
//    (round to nearest even, as on the device and in c10::BFloat16);
//  * a launch (COMPRESSM_LAUNCH in cuda_common.cuh): thread blocks one after
//    another, the threads of a block as fibers (ucontext) on one OS thread,
//    switched at __syncthreads and at warp shuffles, so both have their real
//    semantics: a barrier waits for every thread of the block, a shuffle reads
//    the value its source lane had at that shuffle. Between two such points
//    the threads run one at a time, in an order shuffled anew each time
//    (seeded, reproducible): a result that depends on that order, as it would
//    with a missing barrier on the device, comes out wrong here;
//  * launch errors reported through cudaGetLastError: an empty grid or block,
//    more than 1024 threads per block, grid.y or grid.z above 65535.
// Built with AddressSanitizer (tests/kernels/CMakeLists.txt, the default),
// a kernel's out-of-bounds access to a device array (heap) or to a
// __shared__ array (a static here) is reported as compute-sanitizer would;
// the fiber switches are announced to ASan.
// What it reports as errors (std::logic_error from the launch): a deadlock
// (some threads at __syncthreads while others wait at a shuffle or have a
// different count of barriers: divergent barriers), lanes of a warp at
// different shuffles (another kind, or another count), a shuffle whose mask
// is not the whole warp, whose width is not 32, or whose warp is incomplete
// or has exited lanes; a device function called outside a launch.
// Thread blocks run one at a time, in an order shuffled per launch (seeded).
// What it cannot show: device numerics (libm here, not CUDA's math library),
// races inside one thread's run between two barriers (fibers do not
// interleave there), memory coherence, performance, reads of shared memory
// nobody wrote (it starts zeroed and keeps the previous block's contents;
// on the device it is garbage), host pointers passed to a kernel (they work
// here), or whether nvcc compiles the file (the device script does).
#pragma once

#define COMPRESSM_CUDA_EMULATION 1

#include <math.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one after another on one OS thread: a function's static is the
// block's shared memory.
#define __shared__ static

struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
// CUDA's 8- and 16-byte integer vectors (one memory access on the device).
struct alignas(8) uint2 {
  unsigned int x, y;
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
// The store intrinsic with the default (write-back) cache policy.
inline void __stwb(uint2* p, uint2 value) { *p = value; }
inline void __stwb(uint4* p, uint4 value) { *p = value; }

struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t word = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &word, sizeof f);
  return f;
}
// NaN becomes 0x7fc0 as in c10::BFloat16 (the device's cvt gives 0x7fff;
// the tests compare with c10).
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  if (isnan(f)) return {0x7fc0};
  uint32_t word;
  std::memcpy(&word, &f, sizeof word);
  word += 0x7fffu + ((word >> 16) & 1u);
  return {static_cast<uint16_t>(word >> 16)};
}
// Two bfloat16 (a complex number's re, im) in 4 bytes, as CUDA's.
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return {__bfloat162float(h.x), __bfloat162float(h.y)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return {__float2bfloat16_rn(f.x), __float2bfloat16_rn(f.y)}; }

struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t error);

// The emulated device: one, with 132 multiprocessors (an H100 SXM / H200)
// that each hold 2048 threads, at most 32 blocks (registers and shared memory
// are not modelled).
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device);
template <class Kernel>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel, int threads, size_t) {
  *blocks = threads <= 0 ? 0 : (2048 / threads < 32 ? 2048 / threads : 32);
  return cudaSuccess;
}

// The running thread's coordinates (set by the scheduler before it resumes a thread).
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void __syncthreads();

namespace compressm::cuda_emulator {

// Runs body() once per thread of the grid (see above); throws std::logic_error
// on a deadlock or a misused shuffle, rethrows what a thread threw.
void launch(dim3 grid, dim3 block, const std::function<void()>& body);

// Which __shfl_*_sync a lane is at: every lane of the warp must be at the same one.
enum class ShuffleKind { kXor, kDown, kIndex };

// The value `value` had in lane `source` (of this warp) at this shuffle;
// every lane of the warp must take part (mask 0xffffffff, width 32).
uint64_t exchange(ShuffleKind kind, unsigned int mask, int width, uint64_t value, int source,
                  bool keep_own_if_out_of_range);
int lane_id();

// Launches run so far, and their threads (tests).
long long launches();
long long threads_launched();

template <class T>
T shuffle(ShuffleKind kind, unsigned int mask, int width, T value, int source, bool keep_own) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "shuffle: at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof value);
  bits = exchange(kind, mask, width, bits, source, keep_own);
  T result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

}  // namespace compressm::cuda_emulator

template <class T>
T __shfl_xor_sync(unsigned int mask, T value, int lane_mask, int width = 32) {
  using compressm::cuda_emulator::ShuffleKind;
  const int lane = compressm::cuda_emulator::lane_id();
  return compressm::cuda_emulator::shuffle(ShuffleKind::kXor, mask, width, value, lane ^ (lane_mask & 31), false);
}
// A delta above 31 is not emulated (the device reads its low 5 bits): an error.
template <class T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
  using compressm::cuda_emulator::ShuffleKind;
  const int lane = compressm::cuda_emulator::lane_id();
  const int source = delta > 31 ? -1 : lane + static_cast<int>(delta);
  return compressm::cuda_emulator::shuffle(ShuffleKind::kDown, mask, width, value, source, true);
}
template <class T>
T __shfl_sync(unsigned int mask, T value, int source, int width = 32) {
  using compressm::cuda_emulator::ShuffleKind;
  return compressm::cuda_emulator::shuffle(ShuffleKind::kIndex, mask, width, value, source & 31, false);
}

// kernel<<<grid, block, 0, stream>>>(args...), written COMPRESSM_LAUNCH(kernel,
// grid, block, stream)(args...) in the .cu files (cuda_common.cuh). The
// arguments are copied into each thread's call, as the device does.
#define COMPRESSM_EMULATED_LAUNCH(kernel, grid, block, stream)                                   \
  [&](auto&&... compressm_arguments) {                                                          \
    (void)(stream);                                                                              \
    ::compressm::cuda_emulator::launch(dim3(grid), dim3(block), [&] { kernel(compressm_arguments...); }); \
  }
