// The BLAS library at run time: which backend this build has, how many threads
// each call may use, and which of OpenBLAS's kernel sets it runs.
//
// Kernel choice. OpenBLAS's dynamic-architecture build (Debian's) picks its
// kernels from the CPU model when it loads. Version 0.3.21 does not know CPUs
// released after it (e.g. the development machine's Xeon, family 6 model 207)
// and falls back to its oldest x86-64 set, Prescott (SSE3): one sCIFAR-shaped
// reduction took 800 ms instead of 490 ms, a 384 x 384 zherk 3x longer. Unless
// the user chose a set with OPENBLAS_CORETYPE, the newest set the CPU can run
// (by its feature flags, which also check that the OS saves the wide
// registers) replaces an older choice: SkylakeX for AVX-512, Haswell for
// AVX2 + FMA. The switch re-runs OpenBLAS's own selection through the two
// functions its dynamic build exports (gotoblas_dynamic_quit/init) with
// OPENBLAS_CORETYPE set for that moment. It happens once, while the program
// starts (a static initialiser of this file, which every program using the
// linear-algebra core links): before any thread exists that could call BLAS.
// LibTorch's BLAS calls go to the same library and get the same kernels.
#include <cstdlib>
#include <cstring>
#include <string>

#include "linalg/dense_kernels.h"

#ifndef COMPRESSM_WITH_LAPACK
#define COMPRESSM_WITH_LAPACK 0
#endif

#if COMPRESSM_WITH_LAPACK
extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
// Present in OpenBLAS's dynamic-architecture builds only.
char* openblas_get_corename(void) __attribute__((weak));
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}
#endif

namespace compressm::linalg {

bool lapack_available() { return COMPRESSM_WITH_LAPACK != 0; }
Backend default_backend() { return lapack_available() ? Backend::Lapack : Backend::Reference; }
const char* backend_name(Backend backend) {
  return backend == Backend::Lapack ? "lapack" : "reference";
}

void set_dense_kernel_threads(int threads) {
#if COMPRESSM_WITH_LAPACK
  openblas_set_num_threads(threads);
#else
  (void)threads;
#endif
}

int dense_kernel_threads() {
#if COMPRESSM_WITH_LAPACK
  return openblas_get_num_threads();
#else
  return 1;
#endif
}

namespace {

#if COMPRESSM_WITH_LAPACK
// 0: SSE-era sets, 1: AVX, 2: AVX2 + FMA, 3: AVX-512 (double precision).
int kernel_level(const std::string& core) {
  for (const char* name : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (core == name) return 3;
  for (const char* name : {"Haswell", "Zen"})
    if (core == name) return 2;
  for (const char* name : {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"})
    if (core == name) return 1;
  return 0;
}

int cpu_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd"))
    return 3;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
#endif
  return 0;
}
#endif

std::string current_core() {
#if COMPRESSM_WITH_LAPACK
  if (openblas_get_corename) return openblas_get_corename();
#endif
  return "";
}

BlasKernels choose_kernels() {
  BlasKernels k;
  k.chosen_by_library = current_core();
  k.in_use = k.chosen_by_library;
#if COMPRESSM_WITH_LAPACK
  const char* user_choice = std::getenv("OPENBLAS_CORETYPE");
  if (user_choice != nullptr && *user_choice != '\0') {
    k.how = "set by OPENBLAS_CORETYPE";
    return k;
  }
  const int level = cpu_level();
  if (k.in_use.empty() || !gotoblas_dynamic_init || !gotoblas_dynamic_quit ||
      level <= kernel_level(k.in_use)) {
    k.how = "chosen by OpenBLAS";
    return k;
  }
  setenv("OPENBLAS_CORETYPE", level == 3 ? "SkylakeX" : "Haswell", 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  k.in_use = current_core();
  k.how = "switched from " + k.chosen_by_library + ", older than this CPU supports";
#else
  k.how = "no BLAS in this build";
#endif
  return k;
}

const BlasKernels kKernels = choose_kernels();

}  // namespace

const BlasKernels& blas_kernels() { return kKernels; }

}  // namespace compressm::linalg
