// The CUDA kernels of src/kernels/cuda, their own source compiled for the CPU
// emulator (cuda_emulator/cuda_emulator.h), against the CPU references they
// are tested against on a device (tests/nn/test_cuda_parity.cpp): the fused
// element-wise ops, the parameterisation, the loss, the row sums and the
// multi-tensor AdamW against the CPU loops of kernels/fused_ops.h; the fused
// LRU layer and the diagonal scan against the float64 CPU kernels; the
// bfloat16-storage scan and the wide bf16 layer's skip term against their
// CPU kernels. What this
// shows: indexing, launch shapes, block and warp reductions, barriers and
// bfloat16 rounding are right. What it cannot show: CUDA's math library, data
// races, nvcc (the device script covers those).
#include <c10/util/BFloat16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/fused_ops_cuda.h"
#include "kernels/cuda/lru_cuda.h"
#include "kernels/cuda/narrow_mix_cuda.h"
#include "kernels/diagonal_scan.h"
#include "kernels/diagonal_scan_bf16.h"
#include "kernels/fused_ops.h"
#include "kernels/lru_layer_kernel.h"
#include "kernels/narrow_mix.h"
#include "kernels/philox.h"

// threads_launched(), last: its macros stand in for CUDA's keywords.
#include "cuda_emulator.h"

namespace compressm::kernels {
namespace {

namespace ew = elementwise;
using cuda::Storage;
constexpr cuda::Stream kStream = nullptr;

std::vector<float> random_floats(size_t n, uint32_t seed, float low = -2.f, float high = 2.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> random_mask(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> m(n);
  for (uint8_t& x : m) x = rng() % 4 != 0 ? 1 : 0;
  return m;
}

// |a_i - b_i| <= tolerance * (1 + |b_i|) for every i; a NaN (an element the
// kernel did not write: outputs start as NaN) fails.
template <class A, class B>
void expect_close(const std::vector<A>& a, const std::vector<B>& b, double tolerance, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (!(std::abs(x - y) <= tolerance * (1 + std::abs(y)))) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " elements off, the first at " << first
                     << ": " << a[first] << " vs " << b[first];
}

// bfloat16 arrays: the CPU loops' c10::BFloat16 and the kernels' __nv_bfloat16 are the same bits.
std::vector<uint16_t> bits_of(const std::vector<c10::BFloat16>& v) {
  std::vector<uint16_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(uint16_t));
  return bits;
}
std::vector<c10::BFloat16> to_bf16(const std::vector<float>& v) {
  return std::vector<c10::BFloat16>(v.begin(), v.end());
}

// n not a multiple of the 256-thread blocks; large enough for several blocks.
constexpr int64_t kElements = 3 * 256 + 77;

TEST(EmulatedCudaFusedOps, GeluDropoutMatchesTheCpuLoops) {
  const auto y = random_floats(kElements, 1, -4.f, 4.f);
  const auto grad = random_floats(kElements, 2);
  const auto mask = random_mask(kElements, 3);
  for (const bool dropout : {false, true}) {
    const uint8_t* keep = dropout ? mask.data() : nullptr;
    const float scale = dropout ? 1.f / 0.75f : 1.f;
    SCOPED_TRACE(dropout ? "dropout" : "no dropout");
    // float32 storage
    std::vector<float> z(kElements), z_ref(kElements), gy(kElements), gy_ref(kElements);
    cuda::gelu_dropout_forward(y.data(), z.data(), Storage::kFloat32, kElements, keep, scale, kStream);
    ew::gelu_dropout_forward(y.data(), z_ref.data(), kElements, keep, scale);
    expect_close(z, z_ref, 1e-6, "forward f32");
    cuda::gelu_dropout_backward(y.data(), grad.data(), Storage::kFloat32, gy.data(), kElements, keep, scale, kStream);
    ew::gelu_dropout_backward(y.data(), grad.data(), gy_ref.data(), kElements, keep, scale);
    expect_close(gy, gy_ref, 1e-6, "backward f32");
    // bfloat16 storage of z and of its gradient
    std::vector<uint16_t> zb(kElements);
    std::vector<c10::BFloat16> zb_ref(kElements);
    cuda::gelu_dropout_forward(y.data(), zb.data(), Storage::kBFloat16, kElements, keep, scale, kStream);
    ew::gelu_dropout_forward(y.data(), zb_ref.data(), kElements, keep, scale);
    EXPECT_EQ(zb, bits_of(zb_ref)) << "forward bf16: the same rounding";
    const auto grad_b = to_bf16(grad);
    cuda::gelu_dropout_backward(y.data(), grad_b.data(), Storage::kBFloat16, gy.data(), kElements, keep, scale,
                                kStream);
    ew::gelu_dropout_backward(y.data(), grad_b.data(), gy_ref.data(), kElements, keep, scale);
    expect_close(gy, gy_ref, 1e-6, "backward bf16");
  }
}

// Past 4096 blocks x 1024 elements a thread takes a second round of
// kStrideBatch elements (batched_grid_stride), the last one partly past n:
// every element written once (outputs start as NaN), as the CPU loop.
TEST(EmulatedCudaFusedOps, GeluDropoutCoversSeveralRoundsPerThread) {
  const int64_t n = 4096 * 1024 + 777;
  const auto y = random_floats(n, 9, -4.f, 4.f);
  const auto mask = random_mask(n, 10);
  std::vector<float> z(n, NAN), z_ref(n);
  cuda::gelu_dropout_forward(y.data(), z.data(), Storage::kFloat32, n, mask.data(), 1.f / 0.75f, kStream);
  ew::gelu_dropout_forward(y.data(), z_ref.data(), n, mask.data(), 1.f / 0.75f);
  expect_close(z, z_ref, 1e-6, "forward f32");
}

TEST(EmulatedCudaFusedOps, GluResidualMatchesTheCpuLoops) {
  for (const int64_t hidden : {5, 96}) {
    const int64_t rows = kElements / hidden + 1;
    SCOPED_TRACE("H = " + std::to_string(hidden));
    const auto vg = random_floats(rows * 2 * hidden, 4, -3.f, 3.f);
    const auto x = random_floats(rows * hidden, 5);
    const auto grad = random_floats(rows * hidden, 6);
    const auto mask = random_mask(rows * hidden, 7);
    const auto bias_values = random_floats(2 * hidden, 8);
    for (const auto& [dropout, with_bias] :
         std::vector<std::pair<bool, bool>>{{false, false}, {true, false}, {false, true}, {true, true}}) {
      SCOPED_TRACE(std::string(dropout ? "dropout" : "no dropout") + (with_bias ? ", bias" : ""));
      const float* bias = with_bias ? bias_values.data() : nullptr;
      const uint8_t* keep = dropout ? mask.data() : nullptr;
      const float scale = dropout ? 1.f / 0.75f : 1.f;
      std::vector<float> out(rows * hidden), out_ref(rows * hidden);
      std::vector<float> gvg(rows * 2 * hidden, NAN), gvg_ref(rows * 2 * hidden);
      cuda::glu_residual_forward(vg.data(), Storage::kFloat32, x.data(), out.data(), rows, hidden, keep, scale,
                                 kStream, bias);
      ew::glu_residual_forward(vg.data(), x.data(), out_ref.data(), rows, hidden, keep, scale, bias);
      expect_close(out, out_ref, 1e-6, "forward f32");
      if (with_bias) {  // the bias moves the output (a kernel that dropped it would pass against itself)
        std::vector<float> unbiased(rows * hidden);
        ew::glu_residual_forward(vg.data(), x.data(), unbiased.data(), rows, hidden, keep, scale);
        EXPECT_NE(out, unbiased);
      }
      cuda::glu_residual_backward(vg.data(), Storage::kFloat32, grad.data(), gvg.data(), rows, hidden, keep, scale,
                                  kStream, bias);
      ew::glu_residual_backward(vg.data(), grad.data(), gvg_ref.data(), rows, hidden, keep, scale, bias);
      expect_close(gvg, gvg_ref, 1e-6, "backward f32 (every element of [v | g] written)");
      const auto vgb = to_bf16(vg);
      std::vector<uint16_t> gvgb(rows * 2 * hidden);
      std::vector<c10::BFloat16> gvgb_ref(rows * 2 * hidden);
      cuda::glu_residual_forward(vgb.data(), Storage::kBFloat16, x.data(), out.data(), rows, hidden, keep, scale,
                                 kStream, bias);
      ew::glu_residual_forward(vgb.data(), x.data(), out_ref.data(), rows, hidden, keep, scale, bias);
      expect_close(out, out_ref, 1e-6, "forward bf16");
      cuda::glu_residual_backward(vgb.data(), Storage::kBFloat16, grad.data(), gvgb.data(), rows, hidden, keep,
                                  scale, kStream, bias);
      ew::glu_residual_backward(vgb.data(), grad.data(), gvgb_ref.data(), rows, hidden, keep, scale, bias);
      EXPECT_EQ(gvgb, bits_of(gvgb_ref)) << "backward bf16: the same rounding";
    }
  }
}

// glu_residual_backward with grad_bias: the column sums of [dv | dg] as
// stored (float32, bfloat16), as the CPU op sums them in row order, within
// float rounding of another order (1e-5 of the column's absolute sum).
// Shapes: H = 5 and 96, whose grids are rounded up to a thread count that
// H divides; 3 rows of 7 (most threads have no element and write zero
// sums); 8,300 rows of 512, where threads take a second round.
TEST(EmulatedCudaFusedOps, GluResidualBackwardSumsTheBiasGradient) {
  for (const auto& [rows, hidden] :
       std::vector<std::pair<int64_t, int64_t>>{{170, 5}, {9, 96}, {3, 7}, {8300, 512}}) {
    SCOPED_TRACE("rows = " + std::to_string(rows) + ", H = " + std::to_string(hidden));
    const int64_t n = rows * hidden;
    const auto vg = random_floats(2 * n, 40, -3.f, 3.f), grad = random_floats(n, 41);
    const auto mask = random_mask(n, 42);
    const auto bias = random_floats(2 * hidden, 43);
    const float scale = 1.f / 0.75f;
    std::vector<float> workspace(cuda::glu_residual_workspace(rows, hidden), NAN);
    // Row-order sums of the stored gradient, and the sums of their magnitudes.
    const auto row_sums = [&](const auto& g, std::vector<double>& magnitude) {
      std::vector<float> sum(2 * hidden, 0.f);
      magnitude.assign(2 * hidden, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < 2 * hidden; ++j) {
          const float v = static_cast<float>(g[r * 2 * hidden + j]);
          sum[j] += v;
          magnitude[j] += std::fabs(v);
        }
      return sum;
    };
    const auto expect_sums = [&](const std::vector<float>& got, const std::vector<float>& want,
                                 const std::vector<double>& magnitude, const char* what) {
      int64_t bad = 0;
      for (int64_t j = 0; j < 2 * hidden; ++j)
        bad += !(std::fabs(got[j] - want[j]) <= 1e-5 * (1.0 + magnitude[j]));
      EXPECT_EQ(bad, 0) << what << ": first column " << got[0] << " vs " << want[0];
    };
    std::vector<double> magnitude;
    std::vector<float> gvg(2 * n), gb(2 * hidden, NAN);
    cuda::glu_residual_backward(vg.data(), Storage::kFloat32, grad.data(), gvg.data(), rows, hidden, mask.data(),
                                scale, kStream, bias.data(), gb.data(), workspace.data());
    std::vector<float> gvg_ref(2 * n);
    ew::glu_residual_backward(vg.data(), grad.data(), gvg_ref.data(), rows, hidden, mask.data(), scale, bias.data());
    expect_close(gvg, gvg_ref, 1e-6, "grad_vg f32");
    expect_sums(gb, row_sums(gvg_ref, magnitude), magnitude, "grad_bias f32");
    const auto vgb = to_bf16(vg);
    std::vector<uint16_t> gvgb(2 * n);
    std::vector<c10::BFloat16> gvgb_ref(2 * n);
    std::fill(gb.begin(), gb.end(), NAN);
    cuda::glu_residual_backward(vgb.data(), Storage::kBFloat16, grad.data(), gvgb.data(), rows, hidden, mask.data(),
                                scale, kStream, bias.data(), gb.data(), workspace.data());
    ew::glu_residual_backward(vgb.data(), grad.data(), gvgb_ref.data(), rows, hidden, mask.data(), scale,
                              bias.data());
    EXPECT_EQ(gvgb, bits_of(gvgb_ref));
    expect_sums(gb, row_sums(gvgb_ref, magnitude), magnitude, "grad_bias bf16 (the rounded values summed)");
  }
  std::vector<float> v(8, 1.f), out(8);
  EXPECT_THROW(cuda::glu_residual_backward(v.data(), Storage::kFloat32, v.data(), out.data(), 2, 2, nullptr, 1.f,
                                           kStream, nullptr, out.data(), out.data()),
               std::invalid_argument);  // sums without the bias
}

TEST(EmulatedCudaFusedOps, LruParameterizeMatchesTheCpuLoops) {
  // H = 300 > the backward's 128 threads per state: the threads stride.
  for (const auto& [N, H] : std::vector<std::pair<int64_t, int64_t>>{{7, 5}, {3, 300}, {130, 1}}) {
    SCOPED_TRACE("N = " + std::to_string(N) + ", H = " + std::to_string(H));
    const auto nu = random_floats(N, 8, -1.f, 0.5f), theta = random_floats(N, 9, -2.f, 1.f),
               gamma = random_floats(N, 10, -1.f, 1.f), b_re = random_floats(N * H, 11),
               b_im = random_floats(N * H, 12);
    const ew::LruParameters<float> p{nu.data(), theta.data(), gamma.data(), b_re.data(), b_im.data()};
    std::vector<float> lre(N), lim(N), bre(N * H), bim(N * H), lre_ref(N), lim_ref(N), bre_ref(N * H),
        bim_ref(N * H);
    cuda::lru_parameterize_forward(p, N, H, lre.data(), lim.data(), bre.data(), bim.data(), kStream);
    ew::lru_parameterize_forward(p, N, H, lre_ref.data(), lim_ref.data(), bre_ref.data(), bim_ref.data());
    expect_close(lre, lre_ref, 1e-6, "lambda_re");
    expect_close(lim, lim_ref, 1e-6, "lambda_im");
    expect_close(bre, bre_ref, 1e-6, "Bt_re");
    expect_close(bim, bim_ref, 1e-6, "Bt_im");

    const auto g_lre = random_floats(N, 13), g_lim = random_floats(N, 14), g_bre = random_floats(N * H, 15),
               g_bim = random_floats(N * H, 16);
    std::vector<float> gnu(N), gtheta(N), ggamma(N), gbre(N * H), gbim(N * H);
    std::vector<float> gnu_ref(N), gtheta_ref(N), ggamma_ref(N), gbre_ref(N * H), gbim_ref(N * H);
    cuda::lru_parameterize_backward(p, N, H, g_lre.data(), g_lim.data(), g_bre.data(), g_bim.data(),
                                    {gnu.data(), gtheta.data(), ggamma.data(), gbre.data(), gbim.data()}, kStream);
    ew::lru_parameterize_backward(p, N, H, g_lre.data(), g_lim.data(), g_bre.data(), g_bim.data(),
                                  {gnu_ref.data(), gtheta_ref.data(), ggamma_ref.data(), gbre_ref.data(),
                                   gbim_ref.data()});
    expect_close(gnu, gnu_ref, 1e-6, "dnu_log");
    expect_close(gtheta, gtheta_ref, 1e-6, "dtheta_log");
    expect_close(ggamma, ggamma_ref, 1e-5, "dgamma_log (a sum over H in another order)");
    expect_close(gbre, gbre_ref, 1e-6, "dB_re");
    expect_close(gbim, gbim_ref, 1e-6, "dB_im");
  }
}

TEST(EmulatedCudaFusedOps, CrossEntropyMatchesTheCpuLoops) {
  // B = 300 > the kernel's 256 threads: rows stride; C = 10.
  for (const int64_t batch : {1, 50, 300}) {
    SCOPED_TRACE("B = " + std::to_string(batch));
    const int64_t classes = 10;
    const auto logits = random_floats(batch * classes, 17, -5.f, 5.f);
    std::vector<int64_t> labels(batch);
    std::mt19937 rng(18);
    for (int64_t& y : labels) y = static_cast<int64_t>(rng() % classes);
    std::vector<float> lse(batch), lse_ref(batch), loss(1);
    std::vector<double> stats(2);
    int64_t correct_ref = 0;
    cuda::cross_entropy_forward(logits.data(), labels.data(), batch, classes, lse.data(), loss.data(), stats.data(),
                                kStream);
    const float loss_ref =
        ew::cross_entropy_forward(logits.data(), labels.data(), batch, classes, lse_ref.data(), correct_ref);
    expect_close(lse, lse_ref, 1e-6, "row log-sum-exp");
    EXPECT_NEAR(loss[0], loss_ref, 1e-5 * std::abs(loss_ref));
    EXPECT_EQ(stats[0], static_cast<double>(loss[0]));
    EXPECT_EQ(stats[1], static_cast<double>(correct_ref));
    EXPECT_GT(correct_ref + (batch < 50 ? 1 : 0), 0) << "the test should count some hits";

    const float grad_loss = 0.7f;
    std::vector<float> g(batch * classes), g_ref(batch * classes);
    cuda::cross_entropy_backward(logits.data(), labels.data(), lse.data(), batch, classes, &grad_loss, g.data(),
                                 kStream);
    ew::cross_entropy_backward(logits.data(), labels.data(), lse_ref.data(), batch, classes, grad_loss, g_ref.data());
    expect_close(g, g_ref, 1e-6, "dlogits");
  }
}

// The narrow block's mix stage (cuda/narrow_mix.cu) against the CPU loops
// (kernels/narrow_mix.h) with the same masks: none, given, and drawn in the
// kernels (the CPU gets the bits philox::generator_keeps gives for the
// launch's seed and offset: the GELU's mask elements 0 .. n - 1, the GLU's n .. 2n - 1),
// from values and from a captured state (device pointers plus the
// intra-graph offset). Rows: part of a tile, several tiles, and more tiles
// than the backward's 1024 thread blocks (each block sums two).
TEST(EmulatedCudaNarrowMix, MatchesTheCpuLoopsWithNoGivenAndDrawnMasks) {
  struct Case {
    int64_t rows, hidden;
  };
  const double p = 0.25, keep_prob = 1.0 - p;
  const float scale = static_cast<float>(1.0 / keep_prob);
  const uint64_t seed = 0x9e3779b97f4a7c15ull, offset = 40;
  for (const Case c : {Case{77, 1}, Case{333, 3}, Case{300, 8}, Case{131, 16}, Case{128 * 1025 + 3, 1}}) {
    const int64_t n = c.rows * c.hidden, h = c.hidden;
    const std::vector<float> y = random_floats(n, 1), x = random_floats(n, 2), up = random_floats(n, 3);
    const std::vector<float> weight = random_floats(2 * h * h, 4, -0.6f, 0.6f), bias = random_floats(2 * h, 5);
    const uint64_t threshold = philox::keep_threshold(keep_prob);
    std::vector<uint8_t> drawn(2 * n);
    for (int64_t i = 0; i < 2 * n; ++i) drawn[i] = philox::generator_keeps(seed, offset, i, threshold) ? 1 : 0;
    const std::vector<uint8_t> given_gelu = random_mask(n, 6), given_glu = random_mask(n, 7);
    const int64_t offset_value = 32;  // a captured state: offset 32 + intra-graph 8 = offset 40
    const int64_t seed_value = static_cast<int64_t>(seed);
    for (const std::string mode : {"none", "given", "drawn", "captured"}) {
      SCOPED_TRACE("rows " + std::to_string(c.rows) + " H " + std::to_string(h) + " masks " + mode);
      cuda::NarrowMixDropout d;
      narrow_mix::Dropout ref_d{nullptr, nullptr, 1.0};
      if (mode == "given") {
        d.keep_gelu = given_gelu.data();
        d.keep_glu = given_glu.data();
        ref_d = {given_gelu.data(), given_glu.data(), 1.0 / keep_prob};
      } else if (mode != "none") {
        d.draw = true;
        d.threshold = threshold;
        if (mode == "drawn") {
          d.philox.seed = seed;
          d.philox.offset = offset;
        } else {
          d.philox.seed_ptr = &seed_value;
          d.philox.offset_ptr = &offset_value;
          d.philox.offset_intragraph = 8;
        }
        ref_d = {drawn.data(), drawn.data() + n, 1.0 / keep_prob};
      }
      if (mode != "none") d.scale = scale;
      std::vector<float> out(n, NAN), out_ref(n);
      cuda::narrow_mix_forward(y.data(), x.data(), weight.data(), bias.data(), d, out.data(), c.rows, h, kStream);
      narrow_mix::forward(y.data(), x.data(), {weight.data(), bias.data()}, ref_d, out_ref.data(), c.rows, h);
      expect_close(out, out_ref, 2e-5, "out");
      std::vector<float> grad_y(n, NAN), grad_y_ref(n), params(2 * h * (h + 1), NAN);
      std::vector<float> gw_ref(2 * h * h), gb_ref(2 * h), workspace(cuda::narrow_mix_workspace(c.rows, h), NAN);
      cuda::narrow_mix_backward(y.data(), weight.data(), bias.data(), d, up.data(), grad_y.data(), params.data(),
                                workspace.data(), c.rows, h, kStream);
      narrow_mix::backward(y.data(), {weight.data(), bias.data()}, ref_d, up.data(), grad_y_ref.data(),
                           gw_ref.data(), gb_ref.data(), c.rows, h);
      expect_close(grad_y, grad_y_ref, 2e-5, "grad_y");
      // Sums over up to 131,000 rows, in another order than the CPU's parts.
      const std::vector<float> gw(params.begin(), params.begin() + 2 * h * h), gb(params.begin() + 2 * h * h,
                                                                                    params.end());
      const double sum_tolerance = 2e-6 * std::sqrt(static_cast<double>(c.rows)) * 10;
      expect_close(gw, gw_ref, sum_tolerance, "grad_weight");
      expect_close(gb, gb_ref, sum_tolerance, "grad_bias");
    }
    // The drawn masks keep about 1 - p of each mask's elements.
    const double kept_gelu = std::count(drawn.begin(), drawn.begin() + n, 1) / static_cast<double>(n);
    const double kept_glu = std::count(drawn.begin() + n, drawn.end(), 1) / static_cast<double>(n);
    EXPECT_NEAR(kept_gelu, keep_prob, 5.0 / std::sqrt(static_cast<double>(n)));
    EXPECT_NEAR(kept_glu, keep_prob, 5.0 / std::sqrt(static_cast<double>(n)));
  }
}

TEST(EmulatedCudaNarrowMix, RefusesAWidthAboveSixteenMasksGivenAndDrawnAndAHalfCapturedState) {
  const std::vector<float> v(17 * 34, 0.5f);
  std::vector<float> out(v.size());
  const std::vector<uint8_t> keep(v.size(), 1);
  EXPECT_THROW(cuda::narrow_mix_forward(v.data(), v.data(), v.data(), v.data(), {}, out.data(), 2, 17, kStream),
               std::invalid_argument);
  cuda::NarrowMixDropout both;
  both.keep_glu = keep.data();
  both.draw = true;
  EXPECT_THROW(cuda::narrow_mix_forward(v.data(), v.data(), v.data(), v.data(), both, out.data(), 2, 8, kStream),
               std::invalid_argument);
  cuda::NarrowMixDropout half_captured;
  half_captured.draw = true;
  const int64_t value = 1;
  half_captured.philox.seed_ptr = &value;
  EXPECT_THROW(cuda::narrow_mix_forward(v.data(), v.data(), v.data(), v.data(), half_captured, out.data(), 2, 8,
                                        kStream),
               std::invalid_argument);
}

// The keep-mask kernel writes philox::generator_keeps' bit for every
// element, from the state given by value or (a captured CUDA graph) behind
// pointers plus the intra-graph offset. Sizes: a partial group only (1, 3),
// one whole group (4), whole groups and a partial one (1003), and past the
// grid's 4096 x 256 threads of 4 elements, where threads take a second
// group (4,194,309: the last two groups, the last partial).
TEST(EmulatedCudaDropoutMask, WritesTheGeneratorsBitsForEveryElement) {
  const uint64_t seed = 0x1234abcd5678ull, offset = 40;
  const uint64_t threshold = philox::keep_threshold(0.8);
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{1003}, int64_t{4194309}}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    // 0xff (neither 0 nor 1) in every byte that must be written, and past the end.
    std::vector<uint8_t> by_value(n + 4, 0xff), captured(n + 4, 0xff);
    cuda::PhiloxSeed value;
    value.seed = seed;
    value.offset = offset;
    cuda::draw_keep_mask(by_value.data(), n, value, threshold, kStream);
    const int64_t seed_value = static_cast<int64_t>(seed), offset_value = static_cast<int64_t>(offset - 8);
    cuda::PhiloxSeed in_graph;
    in_graph.seed_ptr = &seed_value;
    in_graph.offset_ptr = &offset_value;
    in_graph.offset_intragraph = 8;
    cuda::draw_keep_mask(captured.data(), n, in_graph, threshold, kStream);
    int64_t wrong = 0, kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t expected = philox::generator_keeps(seed, offset, static_cast<uint64_t>(i), threshold) ? 1 : 0;
      wrong += (by_value[i] != expected) + (captured[i] != expected);
      kept += expected;
    }
    EXPECT_EQ(wrong, 0);
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(by_value[n + k], 0xff) << "a byte past the mask was written";
      EXPECT_EQ(captured[n + k], 0xff) << "a byte past the mask was written";
    }
    if (n > 1000) {  // within 5 standard deviations of 0.8
      EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(n), 0.8, 5.0 * std::sqrt(0.8 * 0.2 / n));
    }
  }
  // Another offset: other bits.
  std::vector<uint8_t> a(1000), b(1000);
  cuda::PhiloxSeed s;
  s.seed = seed;
  s.offset = offset;
  cuda::draw_keep_mask(a.data(), 1000, s, threshold, kStream);
  s.offset = offset + 4;
  cuda::draw_keep_mask(b.data(), 1000, s, threshold, kStream);
  EXPECT_GT(std::count_if(a.begin(), a.end(), [&, i = 0](uint8_t x) mutable { return x != b[i++]; }), 100);
}

TEST(EmulatedCudaDropoutMask, RefusesAMisalignedMaskAndAHalfCapturedState) {
  std::vector<uint32_t> words(4);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(words.data());
  EXPECT_THROW(cuda::draw_keep_mask(bytes + 1, 8, {}, 0, kStream), std::invalid_argument);
  cuda::PhiloxSeed half;
  const int64_t value = 1;
  half.offset_ptr = &value;
  EXPECT_THROW(cuda::draw_keep_mask(bytes, 8, half, 0, kStream), std::invalid_argument);
  EXPECT_THROW(cuda::draw_keep_mask(bytes, -1, {}, 0, kStream), std::invalid_argument);
}

// sum_rows' order of additions: the column's rows split into kThreads /
// tile groups (tile = reduce_tile(rows, cols)), group g adding rows g, g +
// groups, ... in turn, then the groups' sums added in group order.
std::vector<float> grouped_column_sums(const std::vector<float>& in, int64_t rows, int64_t cols) {
  const int64_t tile = cuda::reduce_tile(rows, cols), groups = 256 / tile;
  std::vector<float> out(cols);
  for (int64_t j = 0; j < cols; ++j) {
    float total = 0.f;
    for (int64_t g = 0; g < groups; ++g) {
      float sum = 0.f;
      for (int64_t r = g; r < rows; r += groups) sum += in[r * cols + j];
      total += sum;
    }
    out[j] = total;
  }
  return out;
}

TEST(EmulatedCudaFusedOps, SumRowsAddsEachArraysRowsInItsFixedOrder) {
  // Arrays of different shapes in one launch (blockIdx.y = array); up to 32
  // rows take tiles of up to 256 columns (one group adds the rows): 3 x 700
  // (3 tiles, the last partial), 1 x 1, 16 x 3 (85 groups, most idle), 17 x
  // 4097 (17 tiles). More rows take tiles of 32 columns: 50 x 16 (16 groups
  // of 3-4 rows, no round of 16 loads ahead), 37 x 5 (51 groups, 1 idle
  // thread), 700 x 8 (32 groups of 21-22 rows: a round of 16 loads ahead,
  // the rest one by one), 256 x 1024 (a sCIFAR block's column parts: 8
  // groups of 32 rows, two rounds). Then a second launch where blocks take
  // several tiles (more than the 1024 blocks' worth): 40 x 33000 (1032 tiles
  // of 32) and 3 x 270000 (1055 tiles of 256). Equal to the same order of
  // float additions on the CPU, and within float rounding of the exact sums.
  const std::vector<std::vector<std::pair<int64_t, int64_t>>> launches{
      {{3, 700}, {50, 16}, {1, 1}, {37, 5}, {16, 3}, {17, 4097}, {700, 8}, {256, 1024}},
      {{40, 33000}, {3, 270000}}};
  for (const auto& shapes : launches) {
    ASSERT_LE(shapes.size(), static_cast<size_t>(cuda::kSumRowsJobs));
    std::vector<std::vector<float>> in, out;
    std::vector<cuda::SumRowsJob> jobs;
    for (size_t k = 0; k < shapes.size(); ++k) {
      const auto [rows, cols] = shapes[k];
      in.push_back(random_floats(rows * cols, 20 + k));
      out.emplace_back(cols, NAN);
    }
    for (size_t k = 0; k < shapes.size(); ++k)
      jobs.push_back({in[k].data(), out[k].data(), shapes[k].first, shapes[k].second});
    cuda::sum_rows(jobs.data(), static_cast<int>(jobs.size()), kStream);
    for (size_t k = 0; k < shapes.size(); ++k) {
      const auto [rows, cols] = shapes[k];
      SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols));
      EXPECT_EQ(out[k], grouped_column_sums(in[k], rows, cols)) << "the fixed order";
      std::vector<float> exact(cols);
      for (int64_t j = 0; j < cols; ++j) {
        double sum = 0.0;
        for (int64_t r = 0; r < rows; ++r) sum += in[k][r * cols + j];
        exact[j] = static_cast<float>(sum);
      }
      expect_close(out[k], exact, 1e-5, "against float64");
    }
    EXPECT_THROW(cuda::sum_rows(jobs.data(), cuda::kSumRowsJobs + 1, kStream), std::invalid_argument);
  }
}

TEST(EmulatedCudaFusedOps, ColumnSumsAddEachColumnOfAFloatOrBfloat16ArrayOrOfAProduct) {
  // {rows, cols}: sMNIST-like 8 columns over many parts, a partial tile,
  // one row, 3 columns (idle threads), 1024 columns in 32 tiles.
  const std::vector<std::pair<int64_t, int64_t>> shapes{{5000, 8}, {300, 70}, {1, 5}, {700, 3}, {90, 1024}};
  for (const auto& [rows, cols] : shapes) {
    for (const bool product : {false, true}) {
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + (product ? " a .* b" : ""));
      const auto a = random_floats(rows * cols, 50), b = random_floats(rows * cols, 51);
      const auto a16 = to_bf16(a);
      std::vector<double> exact(cols, 0.0), exact16(cols, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t i = r * cols + j;
          exact[j] += double(a[i]) * (product ? b[i] : 1.0);
          exact16[j] += double(float(a16[i])) * (product ? b[i] : 1.0);
        }
      const int64_t parts = cuda::column_sum_parts(rows, cols);
      EXPECT_GE(parts, 1);
      EXPECT_LE(parts, 256);
      std::vector<float> workspace(parts * cols, NAN), out(cols, NAN);
      cuda::column_sums(a.data(), Storage::kFloat32, product ? b.data() : nullptr, out.data(), workspace.data(), rows,
                        cols, kStream);
      // float32 sums of up to 5000 terms of magnitude <= 4: a few ulp of the total's scale.
      expect_close(out, exact, 2e-5 * std::sqrt(double(rows)), "float32");
      std::fill(out.begin(), out.end(), NAN);
      cuda::column_sums(a16.data(), Storage::kBFloat16, product ? b.data() : nullptr, out.data(), workspace.data(),
                        rows, cols, kStream);
      expect_close(out, exact16, 2e-5 * std::sqrt(double(rows)), "bfloat16");
    }
  }
  EXPECT_EQ(cuda::column_sum_parts(0, 8), 0);
  EXPECT_EQ(cuda::column_sum_parts(1000000, 8), 256);
}

// A dense layer of few inputs (the encoder, sMNIST's head). {rows, inputs,
// cols}: sMNIST's encoder (1 input, 8 columns: two groups of four per row,
// 128 rows per block), sCIFAR's (3 inputs, 512 columns: one tile of 128
// groups), sMNIST's head (8 inputs, 10 columns: one wide, the bound of 16
// inputs), 16 inputs over 7 columns, 1100 columns (275 groups: two tiles),
// and one row; then 600 rows of 8192 columns (2048 groups, 8 tiles: the
// grid capped at 512 x 8 blocks), where the threads of the first 88 rows
// take a second row too, four (3 inputs) or two (8 inputs) rows in flight. Forward: within float rounding
// of float64 (an element off by a row, a column or an input is off by
// O(1)), and the same bits one wide (more threads).
TEST(EmulatedCudaFusedOps, NarrowLinearIsXTimesWeightTransposedPlusBias) {
  using Shape = std::tuple<int64_t, int64_t, int64_t>;
  const std::vector<Shape> shapes{{3000, 1, 8},  {700, 3, 512},   {50, 8, 10},   {37, 16, 7},
                                  {30, 5, 1100}, {1, 2, 4},       {600, 3, 8192}, {600, 8, 8192}};
  for (const auto& [rows, inputs, cols] : shapes) {
    const bool capped = cols == 8192;
    for (const bool with_bias : {true, false}) {
      if (capped && !with_bias) continue;  // (the emulator's time)
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(inputs) + " -> " + std::to_string(cols) +
                   (with_bias ? " + bias" : ""));
      const auto x = random_floats(rows * inputs, 60), weight = random_floats(cols * inputs, 61),
                 bias = random_floats(cols, 62);
      const float* b = with_bias ? bias.data() : nullptr;
      std::vector<double> exact(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) {
          double sum = with_bias ? bias[j] : 0.0;
          for (int64_t q = 0; q < inputs; ++q) sum += double(x[r * inputs + q]) * weight[j * inputs + q];
          exact[r * cols + j] = sum;
        }
      std::vector<float> out(rows * cols, NAN);
      const long long before = compressm::cuda_emulator::threads_launched();
      cuda::narrow_linear_forward(x.data(), weight.data(), b, out.data(), rows, inputs, cols, kStream);
      const long long threads = compressm::cuda_emulator::threads_launched() - before;
      expect_close(out, exact, 1e-6 * double(inputs + 1), "against float64");
      std::vector<float> scalar(rows * cols, NAN);
      cuda::set_vector_width(1);
      const long long first = compressm::cuda_emulator::threads_launched();
      cuda::narrow_linear_forward(x.data(), weight.data(), b, scalar.data(), rows, inputs, cols, kStream);
      const long long scalar_threads = compressm::cuda_emulator::threads_launched() - first;
      cuda::set_vector_width(4);
      EXPECT_EQ(scalar, out) << "one wide";
      if (cols % 4 == 0 && rows > 1 && !capped) {
        EXPECT_GT(scalar_threads, threads) << "four wide launched as many threads as one wide";
      }
      if (capped) {
        EXPECT_LT(threads * 4, rows * cols) << "no thread took a second row";
      }
    }
  }
  std::vector<float> none(64, 0.f);
  for (const int64_t inputs : {int64_t{0}, int64_t{17}})
    EXPECT_THROW(cuda::narrow_linear_forward(none.data(), none.data(), nullptr, none.data(), 2, inputs, 2, kStream),
                 std::invalid_argument);
}

// Backward: grad_bias is column_sums(grad) bit for bit (the same parts and
// order), and both gradients are within float rounding of float64; no
// rows: zeros.
TEST(EmulatedCudaFusedOps, NarrowLinearBackwardSumsTheWeightAndBiasGradients) {
  using Shape = std::tuple<int64_t, int64_t, int64_t>;
  const std::vector<Shape> shapes{{3000, 1, 8}, {700, 3, 512}, {50, 8, 10}, {37, 16, 7}, {90, 2, 70}, {1, 2, 4}};
  for (const auto& [rows, inputs, cols] : shapes) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(inputs) + " -> " + std::to_string(cols));
    const auto grad = random_floats(rows * cols, 63), x = random_floats(rows * inputs, 64);
    const int64_t workspace_size = cuda::narrow_linear_workspace(rows, inputs, cols);
    EXPECT_EQ(workspace_size, cuda::column_sum_parts(rows, cols) * cols * (inputs + 1));
    std::vector<float> workspace(workspace_size, NAN), grad_weight(cols * inputs, NAN), grad_bias(cols, NAN);
    cuda::narrow_linear_backward(grad.data(), x.data(), grad_weight.data(), grad_bias.data(), workspace.data(), rows,
                                 inputs, cols, kStream);
    std::vector<float> sums_workspace(cuda::column_sum_parts(rows, cols) * cols), bias_sums(cols);
    cuda::column_sums(grad.data(), Storage::kFloat32, nullptr, bias_sums.data(), sums_workspace.data(), rows, cols,
                      kStream);
    EXPECT_EQ(grad_bias, bias_sums) << "column_sums of grad";
    std::vector<double> exact_weight(cols * inputs, 0.0), exact_bias(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        exact_bias[j] += grad[r * cols + j];
        for (int64_t q = 0; q < inputs; ++q)
          exact_weight[j * inputs + q] += double(grad[r * cols + j]) * x[r * inputs + q];
      }
    expect_close(grad_weight, exact_weight, 2e-5 * std::sqrt(double(rows)), "weight against float64");
    expect_close(grad_bias, exact_bias, 2e-5 * std::sqrt(double(rows)), "bias against float64");
  }
  std::vector<float> grad_weight(6, NAN), grad_bias(3, NAN), none;
  cuda::narrow_linear_backward(none.data(), none.data(), grad_weight.data(), grad_bias.data(), none.data(), 0, 2, 3,
                               kStream);
  EXPECT_EQ(grad_weight, std::vector<float>(6, 0.f)) << "no rows";
  EXPECT_EQ(grad_bias, std::vector<float>(3, 0.f)) << "no rows";
  EXPECT_THROW(cuda::narrow_linear_backward(none.data(), none.data(), grad_weight.data(), grad_bias.data(),
                                            none.data(), 2, 17, 3, kStream),
               std::invalid_argument);
}

TEST(EmulatedCudaFusedOps, MeanOverTimeIsTheMeanOfEachColumn) {
  // {batch, length, cols}: sMNIST's 8 columns (one tile, 32 row groups), a
  // partial 32-column tile, one element, 300 columns over 10 tiles, one step.
  using Shape = std::tuple<int64_t, int64_t, int64_t>;
  // 3 and 31 columns: 256 / tile row groups leave threads that add nothing.
  const std::vector<Shape> shapes{{3, 784, 8}, {2, 50, 70}, {1, 1, 1},  {2, 5, 300},
                                  {4, 1, 33},  {2, 50, 3},  {2, 50, 31}};
  for (const auto& [batch, length, cols] : shapes) {
    SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(length) + "x" + std::to_string(cols));
    const std::vector<float> in = random_floats(batch * length * cols, 40);
    std::vector<float> out(batch * cols, NAN);
    std::vector<double> exact(batch * cols, 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < length; ++t)
        for (int64_t j = 0; j < cols; ++j) exact[b * cols + j] += in[(b * length + t) * cols + j] / double(length);
    cuda::mean_over_time(in.data(), out.data(), batch, length, cols, kStream);
    expect_close(out, exact, 1e-6, "mean");
  }
  std::vector<float> none;
  EXPECT_THROW(cuda::mean_over_time(none.data(), none.data(), 2, 0, 3, kStream), std::invalid_argument);
}

// Its gradient: every element of {batch, length, cols} written, grad[b, j]
// / length exactly (one division, as the CPU's mean backward; LibTorch's
// CUDA one multiplies by 1 / length, within a bit of it). Shapes: a
// few elements, one step, and 4.2M elements, where threads take a second
// round of the batched grid-stride loop.
TEST(EmulatedCudaFusedOps, MeanOverTimeBackwardSpreadsTheGradientOverTime) {
  using Shape = std::tuple<int64_t, int64_t, int64_t>;
  for (const auto& [batch, length, cols] : std::vector<Shape>{{3, 7, 5}, {2, 1, 70}, {5, 1025, 820}}) {
    SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(length) + "x" + std::to_string(cols));
    const std::vector<float> grad = random_floats(batch * cols, 41);
    std::vector<float> out(batch * length * cols, NAN);
    cuda::mean_over_time_backward(grad.data(), out.data(), batch, length, cols, kStream);
    int64_t off = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < length; ++t)
        for (int64_t j = 0; j < cols; ++j)
          off += !(out[(b * length + t) * cols + j] == grad[b * cols + j] / static_cast<float>(length));
    EXPECT_EQ(off, 0);
  }
  std::vector<float> none;
  EXPECT_THROW(cuda::mean_over_time_backward(none.data(), none.data(), 2, 0, 3, kStream), std::invalid_argument);
}

TEST(EmulatedCudaFusedOps, AdamwStepUpdatesEveryTensorOfTheBucketAndSkipsThoseWithoutGradient) {
  // 70 tensors (two launches of at most 64), sizes 0 to 600, every 7th without a gradient.
  const int64_t count = 70;
  std::vector<int64_t> starts{0};
  for (int64_t k = 0; k < count; ++k) starts.push_back(starts.back() + (k * 37) % 601);
  const int64_t total = starts.back();
  auto p = random_floats(total, 30), m = random_floats(total, 31, -0.1f, 0.1f), v = random_floats(total, 32, 0.f, 0.1f);
  const auto g = random_floats(total, 33);
  std::vector<const float*> grads;
  for (int64_t k = 0; k < count; ++k) grads.push_back(k % 7 == 3 ? nullptr : g.data() + starts[k]);
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  const std::vector<float> scalars{1.f - 1e-3f * 0.05f, 1e-3f / (1.f - 0.9f * 0.9f), 1.f / std::sqrt(1.f - 0.998f)};
  auto p_ref = p, m_ref = m, v_ref = v;
  for (int64_t k = 0; k < count; ++k) {
    if (grads[k] == nullptr) continue;
    for (int64_t j = starts[k]; j < starts[k + 1]; ++j)
      ew::adamw_update(p_ref[j], m_ref[j], v_ref[j], g[j], scalars[0], scalars[1], scalars[2], beta1, beta2, eps);
  }
  const cuda::AdamwBucket bucket{p.data(), m.data(), v.data(), grads.data(), starts.data(), count};
  cuda::adamw_step(bucket, scalars.data(), beta1, beta2, eps, kStream);
  EXPECT_EQ(p, p_ref);
  EXPECT_EQ(m, m_ref);
  EXPECT_EQ(v, v_ref);
  int64_t untouched = 0;
  for (int64_t k = 3; k < count; k += 7) untouched += starts[k + 1] - starts[k];
  EXPECT_GT(untouched, 0);
}

// The fused LRU layer (H <= 16) against the float64 CPU layer.
struct LayerCase {
  int64_t batch, length, state, hidden;
};

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

class EmulatedCudaLruLayer : public ::testing::TestWithParam<LayerCase> {
 protected:
  void TearDown() override { cuda::set_fused_time_segments(0); }
  void check(const LayerCase& layer);
};

// Every time-segment count (lru_cuda.h) on every shape: runs of 0 to 13
// chunks, empty runs (L = 16, 4 teams), partial last chunks.
TEST_P(EmulatedCudaLruLayer, ForwardAndBackwardMatchTheFloat64CpuLayer) {
  for (const int64_t segments : {1, 2, 4}) {
    SCOPED_TRACE("time segments " + std::to_string(segments));
    cuda::set_fused_time_segments(segments);
    const LruShape shape{GetParam().batch, GetParam().length, GetParam().state, GetParam().hidden};
    EXPECT_EQ(cuda::fused_forward_segments(shape), segments);
    EXPECT_EQ(cuda::fused_backward_segments(shape), segments);
    EXPECT_EQ(cuda::fused_gradient_rows(shape), shape.batch * segments);
    check(GetParam());
  }
}

// The backward takes its segments from the rows the caller allocated.
TEST(EmulatedCudaLruSegments, BackwardRefusesRowsThatAreNotTheBatchTimesASegmentCount) {
  const LruShape shape{2, 40, 8, 4};
  std::vector<float> w(64, 0.f), u(2 * 40 * 4, 0.f), checkpoints(cuda::fused_checkpoint_size(shape), 0.f);
  const LruWeights<float> weights{w.data(), w.data(), w.data(), w.data(), w.data(), w.data(), w.data()};
  std::vector<float> parts(8 * 8 * 4 + 2 * 40 * 4, 0.f);
  for (const int64_t rows : {0, 3, 6, 16}) {
    const cuda::LruGradientParts g{parts.data(), parts.data(), parts.data(), parts.data(),
                                   parts.data(), parts.data(), parts.data(), rows};
    EXPECT_THROW(cuda::lru_layer_backward(weights, u.data(), checkpoints.data(), u.data(), g, shape, kStream),
                 std::invalid_argument)
        << rows << " rows";
  }
}

TEST(EmulatedCudaLruSegments, AutomaticChoiceFitsTheGridInOneWaveAndKeepsTwoChunksPerSegment) {
  cuda::set_fused_time_segments(0);
  // The emulated device: 132 multiprocessors of 2048 threads, registers not
  // modelled, so 8 blocks of 256 threads (S = 4) or 16 of 128 (S = 2) each.
  // (On an H200 the backward's registers allow one 4-team block per SM: the
  // device picks S = 2 there for sMNIST; the rule is what is tested here.)
  EXPECT_EQ(cuda::fused_forward_segments({50, 784, 256, 8}), 4) << "sMNIST shape: 200 blocks, 49 chunks";
  EXPECT_EQ(cuda::fused_backward_segments({50, 784, 256, 8}), 4) << "on the emulated device";
  EXPECT_EQ(cuda::fused_forward_segments({2, 100, 64, 8}), 2) << "7 chunks: fewer than 2 per segment for S = 4";
  EXPECT_EQ(cuda::fused_forward_segments({2, 50, 64, 8}), 2) << "4 chunks: 2 per segment for S = 2";
  EXPECT_EQ(cuda::fused_forward_segments({2, 40, 64, 8}), 1) << "3 chunks";
  EXPECT_EQ(cuda::fused_forward_segments({1100, 784, 64, 8}), 2) << "1100 blocks > 1056 for S = 4";
  EXPECT_EQ(cuda::fused_forward_segments({1100, 784, 256, 8}), 1) << "4400 blocks > 2112 for S = 2";
  EXPECT_THROW(cuda::set_fused_time_segments(3), std::invalid_argument);
  cuda::set_fused_time_segments(2);
  EXPECT_EQ(cuda::fused_forward_segments({1100, 784, 256, 8}), 2) << "forced";
  cuda::set_fused_time_segments(0);
}

// COMPRESSM_LRU_SEGMENTS sets the initial value; a bad one is an error that
// names it (in a fresh process: the value is read once).
TEST(EmulatedCudaLruSegmentsDeathTest, TheEnvironmentSetsTheInitialValueAndABadOneIsAClearError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto segments_with = [](const char* value) {
    setenv("COMPRESSM_LRU_SEGMENTS", value, 1);
    try {
      std::fprintf(stderr, "segments %lld\n", static_cast<long long>(cuda::fused_forward_segments({50, 784, 256, 8})));
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "%s\n", e.what());
      std::exit(3);
    }
    std::exit(0);
  };
  EXPECT_EXIT(segments_with("2"), ::testing::ExitedWithCode(0), "segments 2");
  EXPECT_EXIT(segments_with("3"), ::testing::ExitedWithCode(3),
              "COMPRESSM_LRU_SEGMENTS: 0 \\(automatic\\), 1, 2 or 4, got '3'");
  EXPECT_EXIT(segments_with("four"), ::testing::ExitedWithCode(3),
              "COMPRESSM_LRU_SEGMENTS: 0 \\(automatic\\), 1, 2 or 4, got 'four'");
  // set_fused_time_segments overrides a bad value.
  EXPECT_EXIT(
      {
        setenv("COMPRESSM_LRU_SEGMENTS", "x", 1);
        cuda::set_fused_time_segments(1);
        std::fprintf(stderr, "segments %lld\n", static_cast<long long>(cuda::fused_forward_segments({2, 784, 8, 8})));
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "segments 1");
}

void EmulatedCudaLruLayer::check(const LayerCase& layer) {
  const auto [B, L, N, H] = layer;
  const LruShape shape{B, L, N, H};
  // |lambda| < 1, as the parameterisation guarantees.
  std::vector<float> lambda_re(N), lambda_im(N);
  std::mt19937 rng(40);
  std::uniform_real_distribution<float> radius(0.5f, 0.999f), phase(0.f, 3.14159f);
  for (int64_t n = 0; n < N; ++n) {
    const float r = radius(rng), a = phase(rng);
    lambda_re[n] = r * std::cos(a);
    lambda_im[n] = r * std::sin(a);
  }
  const auto b_re = random_floats(N * H, 41, -0.5f, 0.5f), b_im = random_floats(N * H, 42, -0.5f, 0.5f);
  const auto c_re = random_floats(H * N, 43, -0.5f, 0.5f), c_im = random_floats(H * N, 44, -0.5f, 0.5f);
  const auto D = random_floats(H, 45), u = random_floats(B * L * H, 46), dy = random_floats(B * L * H, 47);

  // float64 reference
  const auto lre64 = widen(lambda_re), lim64 = widen(lambda_im), bre64 = widen(b_re), bim64 = widen(b_im),
             cre64 = widen(c_re), cim64 = widen(c_im), D64 = widen(D), u64 = widen(u), dy64 = widen(dy);
  const LruWeights<double> w64{lre64.data(), lim64.data(), bre64.data(), bim64.data(),
                               cre64.data(), cim64.data(), D64.data()};
  std::vector<double> y64(B * L * H), checkpoints64(lru_checkpoint_size(shape));
  lru_layer_forward(w64, u64.data(), y64.data(), checkpoints64.data(), shape);
  std::vector<double> g_lre(N), g_lim(N), g_bre(N * H), g_bim(N * H), g_cre(H * N), g_cim(H * N), g_D(H),
      g_u(B * L * H);
  lru_layer_backward(w64, u64.data(), checkpoints64.data(), dy64.data(),
                     LruGradients<double>{g_lre.data(), g_lim.data(), g_bre.data(), g_bim.data(), g_cre.data(),
                                          g_cim.data(), g_D.data(), g_u.data()},
                     shape);

  // The kernels, then what the wrapper (nn/cuda_ops.cpp) adds: the state
  // blocks' parts, D .* u, the per-row gradient parts by sum_rows.
  const LruWeights<float> w{lambda_re.data(), lambda_im.data(), b_re.data(), b_im.data(),
                            c_re.data(),      c_im.data(),      D.data()};
  const int64_t blocks = cuda::fused_state_blocks(shape);
  std::vector<float> parts(blocks * B * L * H, NAN), checkpoints(cuda::fused_checkpoint_size(shape), NAN);
  cuda::lru_layer_forward(w, u.data(), parts.data(), checkpoints.data(), shape, kStream);
  std::vector<float> y(B * L * H);
  for (int64_t i = 0; i < B * L * H; ++i) {
    float sum = 0.f;
    for (int64_t k = 0; k < blocks; ++k) sum += parts[k * B * L * H + i];
    y[i] = sum + D[i % H] * u[i];
  }
  expect_close(y, y64, 2e-5, "y");

  const int64_t R = cuda::fused_gradient_rows(shape);
  std::vector<float> p_lre(R * N, NAN), p_lim(R * N, NAN), p_bre(R * N * H, NAN), p_bim(R * N * H, NAN),
      p_cre(R * H * N, NAN), p_cim(R * H * N, NAN), p_u(blocks * B * L * H, NAN);
  cuda::lru_layer_backward(w, u.data(), checkpoints.data(), dy.data(),
                           {p_lre.data(), p_lim.data(), p_bre.data(), p_bim.data(), p_cre.data(), p_cim.data(),
                            p_u.data(), R},
                           shape, kStream);
  std::vector<float> s_lre(N), s_lim(N), s_bre(N * H), s_bim(N * H), s_cre(H * N), s_cim(H * N), s_u(B * L * H);
  const std::vector<cuda::SumRowsJob> jobs{
      {p_lre.data(), s_lre.data(), R, N},         {p_lim.data(), s_lim.data(), R, N},
      {p_bre.data(), s_bre.data(), R, N * H},     {p_bim.data(), s_bim.data(), R, N * H},
      {p_cre.data(), s_cre.data(), R, H * N},     {p_cim.data(), s_cim.data(), R, H * N},
      {p_u.data(), s_u.data(), blocks, B * L * H}};
  cuda::sum_rows(jobs.data(), static_cast<int>(jobs.size()), kStream);
  for (int64_t i = 0; i < B * L * H; ++i) s_u[i] += D[i % H] * dy[i];
  expect_close(s_lre, g_lre, 2e-4, "dlambda_re");
  expect_close(s_lim, g_lim, 2e-4, "dlambda_im");
  expect_close(s_bre, g_bre, 2e-4, "dB_re");
  expect_close(s_bim, g_bim, 2e-4, "dB_im");
  expect_close(s_cre, g_cre, 2e-4, "dC_re");
  expect_close(s_cim, g_cim, 2e-4, "dC_im");
  expect_close(s_u, g_u, 2e-4, "du");
}

// One to five blocks of 64 states, partial chunks of 16 steps, H padded to 8 or 16.
INSTANTIATE_TEST_SUITE_P(Shapes, EmulatedCudaLruLayer,
                         ::testing::Values(LayerCase{2, 37, 64, 8}, LayerCase{3, 50, 300, 5},
                                           LayerCase{1, 16, 13, 1}, LayerCase{2, 33, 256, 16},
                                           LayerCase{2, 17, 47, 9}, LayerCase{1, 200, 70, 8},
                                           LayerCase{1, 150, 64, 12}, LayerCase{1, 784, 64, 8}),
                         [](const ::testing::TestParamInfo<LayerCase>& info) {
                           const LayerCase& c = info.param;
                           return "B" + std::to_string(c.batch) + "_L" + std::to_string(c.length) + "_N" +
                                  std::to_string(c.state) + "_H" + std::to_string(c.hidden);
                         });

TEST(EmulatedCudaDiagonalScan, ForwardAndBackwardMatchTheFloat64CpuScan) {
  // B x N = 300 threads: two blocks of 256, the second partly idle; L = 37 =
  // two rounds of 16 steps and a tail.
  const ScanShape shape{3, 37, 100};
  const int64_t n = shape.batch * shape.length * shape.state;
  std::vector<std::complex<float>> lambda(shape.state), u(n), gx(n);
  std::mt19937 rng(50);
  std::uniform_real_distribution<float> radius(0.5f, 0.999f), phase(0.f, 3.14159f), value(-1.f, 1.f);
  for (auto& l : lambda) l = std::polar(radius(rng), phase(rng));
  for (auto& x : u) x = {value(rng), value(rng)};
  for (auto& x : gx) x = {value(rng), value(rng)};
  auto widen_complex = [](const std::vector<std::complex<float>>& v) {
    return std::vector<std::complex<double>>(v.begin(), v.end());
  };
  const auto lambda64 = widen_complex(lambda), u64 = widen_complex(u), gx64 = widen_complex(gx);
  std::vector<std::complex<double>> x64(n), gu64(n), gl64(shape.state);
  diagonal_scan_forward(lambda64.data(), u64.data(), x64.data(), shape);
  diagonal_scan_backward(lambda64.data(), x64.data(), gx64.data(), gu64.data(), gl64.data(), shape);

  std::vector<std::complex<float>> x(n), gu(n), gl_rows(shape.batch * shape.state);
  auto floats = [](auto& v) { return reinterpret_cast<float*>(v.data()); };
  auto cfloats = [](const auto& v) { return reinterpret_cast<const float*>(v.data()); };
  cuda::diagonal_scan_forward(cfloats(lambda), cfloats(u), floats(x), shape, kStream);
  cuda::diagonal_scan_backward(cfloats(lambda), cfloats(x), cfloats(gx), floats(gu), floats(gl_rows), shape, kStream);
  std::vector<std::complex<float>> gl(shape.state);
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t k = 0; k < shape.state; ++k) gl[k] += gl_rows[b * shape.state + k];
  auto parts = [](const auto& v) {
    std::vector<double> out;
    for (const auto& z : v) out.insert(out.end(), {static_cast<double>(z.real()), static_cast<double>(z.imag())});
    return out;
  };
  expect_close(parts(x), parts(x64), 1e-5, "x");
  expect_close(parts(gu), parts(gu64), 1e-5, "grad_u");
  expect_close(parts(gl), parts(gl64), 1e-4, "grad_lambda");
}

std::vector<float> floats_of(const std::vector<uint16_t>& bits) {
  std::vector<float> out;
  for (const uint16_t b : bits) out.push_back(static_cast<float>(c10::BFloat16(b, c10::BFloat16::from_bits())));
  return out;
}

// The bit patterns of values as float (bit-for-bit comparisons of outputs).
template <class T>
std::vector<uint32_t> float_bits(const T* p, int64_t count) {
  std::vector<uint32_t> out(count);
  for (int64_t i = 0; i < count; ++i) {
    const float f = static_cast<float>(p[i]);
    std::memcpy(&out[i], &f, sizeof f);
  }
  return out;
}
std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  return float_bits(v.data(), static_cast<int64_t>(v.size()));
}

std::vector<uint16_t> random_bf16_bits(size_t n, uint32_t seed) { return bits_of(to_bf16(random_floats(n, seed))); }

// The kernels against kernels/diagonal_scan_bf16.h's CPU loops: the same
// float32 arithmetic in the same order, so equal up to the compilers' fused
// multiply-adds (a bfloat16 output may then differ by one rounding step,
// 2^-7 relative at most; a wrong index or chunk boundary is off by O(1)).
TEST(EmulatedCudaDiagonalScanBf16, ForwardAndBackwardMatchTheCpuKernels) {
  // B x N = 300 threads: five blocks of 64, the last partly idle; L = 37: two
  // chunks of 16 and a partial one; L = 16 one chunk; L = 3 only a partial one.
  // The kernels load 64 steps (forward) and 32 steps (backward) at a time in
  // two alternating buffers: L = 64 is one forward group, 128 two; 97 two
  // forward groups (the second partial) and four backward ones (one step in
  // the last); 150 three forward groups (the partial last one in the first
  // buffer again); 50 a backward group of 18 steps (its second chunk
  // partial) after a whole one; 200 four forward groups and seven backward.
  for (const ScanShape shape : {ScanShape{3, 37, 100}, ScanShape{2, 16, 7}, ScanShape{1, 3, 70}, ScanShape{1, 64, 5},
                                ScanShape{1, 128, 40}, ScanShape{1, 97, 65}, ScanShape{1, 150, 9}, ScanShape{2, 50, 11},
                                ScanShape{2, 200, 33}}) {
    SCOPED_TRACE("B=" + std::to_string(shape.batch) + " L=" + std::to_string(shape.length) +
                 " N=" + std::to_string(shape.state));
    const int64_t n = 2 * shape.batch * shape.length * shape.state;
    const int64_t checkpoints = 2 * shape.batch * bf16_scan_chunks(shape.length) * shape.state;
    std::vector<float> lambda(2 * shape.state);
    std::mt19937 rng(60);
    std::uniform_real_distribution<float> radius(0.5f, 0.999f), phase(0.f, 3.14159f);
    for (int64_t k = 0; k < shape.state; ++k) {
      const std::complex<float> l = std::polar(radius(rng), phase(rng));
      lambda[2 * k] = l.real();
      lambda[2 * k + 1] = l.imag();
    }
    const auto u = random_bf16_bits(n, 61), gx = random_bf16_bits(n, 62);
    // Outputs start as NaN (0xffff) so that an element nobody wrote fails.
    std::vector<uint16_t> x(n, 0xffff), x_ref(n), gu(n, 0xffff), gu_ref(n);
    std::vector<float> cp(checkpoints, NAN), cp_ref(checkpoints), rows(2 * shape.batch * shape.state, NAN),
        rows_ref(rows.size());
    cuda::diagonal_scan_bf16_forward(lambda.data(), u.data(), x.data(), cp.data(), shape, kStream);
    diagonal_scan_bf16_forward(lambda.data(), u.data(), x_ref.data(), cp_ref.data(), shape);
    expect_close(floats_of(x), floats_of(x_ref), 1.0 / 128, "x");
    expect_close(cp, cp_ref, 1e-6, "checkpoints");
    cuda::diagonal_scan_bf16_backward(lambda.data(), u.data(), cp_ref.data(), gx.data(), gu.data(), rows.data(), shape,
                                      kStream);
    diagonal_scan_bf16_backward(lambda.data(), u.data(), cp_ref.data(), gx.data(), gu_ref.data(), rows_ref.data(),
                                shape);
    expect_close(floats_of(gu), floats_of(gu_ref), 1.0 / 128, "grad_u");
    expect_close(rows, rows_ref, 1e-5, "grad_lambda rows");
  }
}

TEST(EmulatedCudaFusedOps, LruSkipMatchesTheCpuLoops) {
  // rows = 777: 4 rows per part, 195 parts, the last of 1 row; hidden = 300:
  // two column blocks, the second partly idle.
  const int64_t rows = 777, hidden = 300, n = rows * hidden;
  ASSERT_EQ(ew::lru_skip_part_rows(rows), 4);
  ASSERT_EQ(ew::lru_skip_parts(rows), 195);
  const auto D = random_floats(hidden, 70), u = random_floats(n, 71), grad_y = random_floats(n, 72);
  const auto cx = to_bf16(random_floats(n, 73)), grad_gemm = to_bf16(random_floats(n, 74));
  std::vector<float> out(n, NAN), out_ref(n);
  cuda::lru_skip_forward(cx.data(), Storage::kBFloat16, D.data(), u.data(), out.data(), rows, hidden, kStream);
  ew::lru_skip_forward(cx.data(), D.data(), u.data(), out_ref.data(), rows, hidden);
  expect_close(out, out_ref, 1e-6, "forward");
  std::vector<float> gu(n, NAN), gu_ref(n), gD(hidden, NAN), gD_ref(hidden);
  std::vector<float> workspace(cuda::lru_skip_workspace(rows, hidden), NAN);
  ASSERT_EQ(workspace.size(), static_cast<size_t>(2 * ew::lru_skip_parts(rows) * hidden));  // room for two sums
  cuda::lru_skip_backward(grad_y.data(), u.data(), grad_gemm.data(), Storage::kBFloat16, D.data(), gu.data(),
                          gD.data(), workspace.data(), rows, hidden, kStream);
  ew::lru_skip_backward(grad_y.data(), u.data(), grad_gemm.data(), D.data(), gu_ref.data(), gD_ref.data(), rows,
                        hidden);
  expect_close(gu, gu_ref, 1e-6, "grad_u");
  // dL/dD: the same parts, which sum_rows adds in its fixed order of row
  // groups (not the CPU loop's row order): within float rounding.
  expect_close(gD, gD_ref, 1e-5, "grad_D");
  // dL/dD against a float64 sum.
  std::vector<double> exact(hidden, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < hidden; ++h) exact[h] += double(grad_y[r * hidden + h]) * u[r * hidden + h];
  expect_close(gD, exact, 1e-4, "grad_D against float64");
  // 2811 rows: 11 per part, a batch of 8 fetched ahead and 3 one by one.
  {
    const int64_t many = 2811, m = many * hidden;
    const auto u2 = random_floats(m, 77), gy2 = random_floats(m, 78);
    const auto gemm2 = to_bf16(random_floats(m, 79));
    std::vector<float> g2(m, NAN), g2_ref(m), d2(hidden, NAN), d2_ref(hidden);
    std::vector<float> ws2(cuda::lru_skip_workspace(many, hidden), NAN);
    cuda::lru_skip_backward(gy2.data(), u2.data(), gemm2.data(), Storage::kBFloat16, D.data(), g2.data(), d2.data(),
                            ws2.data(), many, hidden, kStream);
    ew::lru_skip_backward(gy2.data(), u2.data(), gemm2.data(), D.data(), g2_ref.data(), d2_ref.data(), many, hidden);
    expect_close(g2, g2_ref, 1e-6, "grad_u, 2811 rows");
    // Sums of 2811 products with cancellation: the two orders (and float64)
    // agree within float rounding of the terms' magnitudes, not of the sum.
    int64_t off = 0;
    for (int64_t h = 0; h < hidden; ++h) {
      double exact2 = 0.0, magnitude = 0.0;
      for (int64_t r = 0; r < many; ++r) {
        exact2 += double(gy2[r * hidden + h]) * u2[r * hidden + h];
        magnitude += std::fabs(double(gy2[r * hidden + h]) * u2[r * hidden + h]);
      }
      off += std::fabs(d2[h] - exact2) > 1e-6 * magnitude || std::fabs(d2_ref[h] - exact2) > 1e-6 * magnitude;
    }
    EXPECT_EQ(off, 0) << "grad_D, 2811 rows, against float64";
  }
  // A few rows (fewer than 256 parts would hold) and float32 storage.
  const int64_t few = 5;
  std::vector<float> cx32 = random_floats(few * hidden, 75), o(few * hidden, NAN), o_ref(few * hidden);
  cuda::lru_skip_forward(cx32.data(), Storage::kFloat32, D.data(), u.data(), o.data(), few, hidden, kStream);
  ew::lru_skip_forward(cx32.data(), D.data(), u.data(), o_ref.data(), few, hidden);
  expect_close(o, o_ref, 1e-6, "forward f32");
  // Three float32 parts summed (the fused narrow layer's state blocks), in order.
  const std::vector<float> cx3 = random_floats(3 * few * hidden, 76);
  std::vector<float> o3(few * hidden, NAN), o3_ref(few * hidden), o3_exact(few * hidden);
  cuda::lru_skip_forward(cx3.data(), Storage::kFloat32, D.data(), u.data(), o3.data(), few, hidden, kStream, 3);
  ew::lru_skip_forward(cx3.data(), D.data(), u.data(), o3_ref.data(), few, hidden, 3);
  for (int64_t i = 0; i < few * hidden; ++i)
    o3_exact[i] = ((0.f + cx3[i]) + cx3[few * hidden + i]) + cx3[2 * few * hidden + i] + D[i % hidden] * u[i];
  expect_close(o3, o3_ref, 1e-6, "forward, three parts");
  expect_close(o3_ref, o3_exact, 1e-6, "forward, three parts, written out");
  std::vector<float> g(few * hidden, NAN), g_ref(few * hidden), d(hidden, NAN), d_ref(hidden);
  cuda::lru_skip_backward(grad_y.data(), u.data(), cx32.data(), Storage::kFloat32, D.data(), g.data(), d.data(),
                          workspace.data(), few, hidden, kStream);
  ew::lru_skip_backward(grad_y.data(), u.data(), cx32.data(), D.data(), g_ref.data(), d_ref.data(), few, hidden);
  expect_close(g, g_ref, 1e-6, "grad_u f32");
  expect_close(d, d_ref, 1e-6, "grad_D f32");
}

// The skip term, GELU and dropout in one pass, bfloat16 storage, with and
// without a mask, u stored or normalised on the fly; rows = 777 (a partial
// last part of rows) and 2811.
TEST(EmulatedCudaFusedOps, LruSkipGeluMatchesTheCpuLoops) {
  // 2811 rows: 11 rows per part, a batch of kRowBatch = 8 rows fetched ahead
  // and 3 one by one (the last part: 6).
  for (const int64_t rows : {int64_t{777}, int64_t{2811}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows));
    const int64_t hidden = 300, n = rows * hidden;
    const auto D = random_floats(hidden, 80), u = random_floats(n, 81);
    const auto cx = to_bf16(random_floats(n, 82)), grad_g = to_bf16(random_floats(n, 83));
    const auto mask = random_mask(n, 84);
    const auto mean = random_floats(hidden, 85), invstd = random_floats(hidden, 86, 0.5f, 2.f);
    const auto grad_out = random_floats(n, 87);
    std::vector<float> workspace(cuda::lru_skip_workspace(rows, hidden), NAN);
    for (const bool normalized : {false, true})
      for (const bool dropout : {false, true}) {
        SCOPED_TRACE(std::string(dropout ? "dropout" : "no dropout") + (normalized ? ", normalised" : ""));
        const ew::NormInput in = normalized ? ew::NormInput{u.data(), mean.data(), invstd.data()}
                                            : ew::NormInput{u.data()};
        const uint8_t* keep = dropout ? mask.data() : nullptr;
        const float scale = dropout ? 1.f / 0.75f : 1.f;
        std::vector<uint16_t> g(n, 0xffff);
        std::vector<c10::BFloat16> g_ref(n);
        cuda::lru_skip_gelu_forward(cx.data(), Storage::kBFloat16, D.data(), in, g.data(), rows, hidden, keep, scale,
                                    kStream);
        ew::lru_skip_gelu_forward(cx.data(), D.data(), in, g_ref.data(), rows, hidden, keep, scale);
        expect_close(floats_of(g), floats_of(bits_of(g_ref)), 1.0 / 128, "g");
        // Normalised: the residual's gradient enters grad_skip, and the sums
        // are dL/dD and the sum of gp.
        const float* go = normalized ? grad_out.data() : nullptr;
        const int64_t sums = normalized ? 2 * hidden : hidden;
        std::vector<uint16_t> gcx(n, 0xffff);
        std::vector<c10::BFloat16> gcx_ref(n);
        std::vector<float> gu(n, NAN), gu_ref(n), gD(sums, NAN), gD_ref(sums);
        cuda::lru_skip_gelu_backward(grad_g.data(), cx.data(), Storage::kBFloat16, D.data(), in, go, gcx.data(),
                                     gu.data(), gD.data(), workspace.data(), rows, hidden, keep, scale, kStream);
        ew::lru_skip_gelu_backward(grad_g.data(), cx.data(), D.data(), in, go, gcx_ref.data(), gu_ref.data(),
                                   gD_ref.data(), rows, hidden, keep, scale);
        expect_close(floats_of(gcx), floats_of(bits_of(gcx_ref)), 1.0 / 128, "grad_cx");
        expect_close(gu, gu_ref, 1e-5, "grad_skip");
        // The same order of additions, but not the same summands to the bit:
        // the CPU loop is built with -march=native (contracted multiply-adds,
        // perhaps a vectorised erf), the emulated kernel without; over 2811
        // rows dL/dD's sums parted by 3e-5 (before and after the kernel's
        // rows were fetched ahead: the same kernel result). 777 rows: 1e-5.
        expect_close(gD, gD_ref, rows == 777 ? 1e-5 : 1e-4, "sums");
        // The CPU loop against float64.
        std::vector<double> sums64(sums, 0.0), skip64(n);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t h = i % hidden;
          const double ui = normalized ? (double(u[i]) - mean[h]) * invstd[h] : u[i];
          const double gp = ew::skip_gelu_gradient<double>(static_cast<float>(cx[i]), D[h], ui,
                                                           keep ? (keep[i] ? scale : 0.0) : 1.0,
                                                           static_cast<float>(grad_g[i]));
          sums64[h] += gp * ui;
          if (normalized) sums64[hidden + h] += gp;
          skip64[i] = (go ? go[i] : 0.0) + (normalized ? double(invstd[h]) : 1.0) * D[h] * gp;
        }
        expect_close(gu_ref, skip64, 1e-5, "grad_skip against float64");
        expect_close(gD_ref, sums64, 1e-4, "sums against float64");
      }
  }
}

// The arrays of one run of an op, each in a buffer of its own at a 16-byte
// aligned address, except array `offset` (in the order placed), one element
// past it.
struct PlacedArrays {
  int offset;  // -1: none
  std::vector<std::vector<char>> buffers;
  template <class T>
  T* place(const std::vector<T>& values) {
    const bool off = offset == static_cast<int>(buffers.size());
    buffers.emplace_back((values.size() + 1) * sizeof(T) + 16);
    char* base = buffers.back().data();
    base += (16 - reinterpret_cast<uintptr_t>(base) % 16) % 16;
    T* at = reinterpret_cast<T*>(base) + (off ? 1 : 0);
    std::memcpy(static_cast<void*>(at), values.data(), values.size() * sizeof(T));
    return at;
  }
};

// The wide kernels take four consecutive elements per thread (16-byte
// loads) where H is a multiple of 4 and every pointer is aligned for that,
// else one. Both paths on the same values, bit for bit (the same
// per-element arithmetic and the same order of each column's sums; the GLU
// bias sums, whose threads take other elements, within rounding): each op
// runs with its arrays aligned (four wide), then once with each array in
// turn one element past an aligned address (the launch must see it and
// take the scalar path: the emulator throws on a misaligned vector access,
// as the device faults). H = 96, 777 rows: 4 rows per part, full groups
// of rows fetched ahead and a tail.
TEST(EmulatedCudaFusedOps, FourWideAndScalarPathsGiveTheSameBits) {
  const int64_t rows = 777, hidden = 96, n = rows * hidden;
  const auto x = random_floats(n, 120, -3.f, 5.f), D = random_floats(hidden, 121), grad_out = random_floats(n, 122);
  const auto mean = random_floats(hidden, 123), invstd = random_floats(hidden, 124, 0.5f, 2.f);
  const auto cx = to_bf16(random_floats(n, 125)), grad_g = to_bf16(random_floats(n, 126));
  const auto mask = random_mask(n, 127);
  const auto vg = to_bf16(random_floats(2 * n, 128, -3.f, 3.f));
  const auto bias = random_floats(2 * hidden, 129);
  const std::vector<float> nan_n(n, NAN), nan_2h(2 * hidden, NAN), nan_h(hidden, NAN);
  const std::vector<c10::BFloat16> bf_n(n), bf_2n(2 * n);
  const float scale = 1.f / 0.75f;
  using Bits = std::vector<std::vector<uint32_t>>;
  // Each op: its outputs' bits, arrays placed by `a` in a fixed order, and
  // the arrays that only scalar code touches (the column sums' totals, the
  // GLU's per-thread sums, per-column kernels' inputs): one element off,
  // the op still runs four wide.
  struct Op {
    const char* name;
    std::function<Bits(PlacedArrays&)> run;
    std::vector<int> scalar_only;
  };
  const std::vector<Op> ops{
      {"lru_skip_gelu forward and backward",
       [&](PlacedArrays& a) {
         const ew::NormInput u{a.place(x), a.place(mean), a.place(invstd)};
         const auto* c = a.place(cx);
         const auto* gg = a.place(grad_g);
         const float* d = a.place(D);
         const uint8_t* keep = a.place(mask);
         const float* go = a.place(grad_out);
         auto* g = a.place(bf_n);
         auto* gc = a.place(bf_n);
         float* gs = a.place(nan_n);
         float* sums = a.place(nan_2h);
         float* workspace = a.place(std::vector<float>(cuda::lru_skip_workspace(rows, hidden), NAN));
         cuda::lru_skip_gelu_forward(c, Storage::kBFloat16, d, u, g, rows, hidden, keep, scale, kStream);
         cuda::lru_skip_gelu_backward(gg, c, Storage::kBFloat16, d, u, go, gc, gs, sums, workspace, rows, hidden,
                                      keep, scale, kStream);
         return Bits{float_bits(g, n), float_bits(gc, n), float_bits(gs, n), float_bits(sums, 2 * hidden)};
       },
       {11}},
      {"lru_skip backward",
       [&](PlacedArrays& a) {
         const float* gy = a.place(grad_out);
         const float* u = a.place(x);
         const auto* gemm = a.place(cx);
         const float* d = a.place(D);
         float* gu = a.place(nan_n);
         float* gD = a.place(nan_h);
         float* workspace = a.place(std::vector<float>(cuda::lru_skip_workspace(rows, hidden), NAN));
         cuda::lru_skip_backward(gy, u, gemm, Storage::kBFloat16, d, gu, gD, workspace, rows, hidden, kStream);
         return Bits{float_bits(gu, n), float_bits(gD, hidden)};
       },
       {5}},
      {"batch norm: moments, cast, backward",
       [&](PlacedArrays& a) {
         const float* xs = a.place(x);
         float* m = a.place(nan_h);
         float* v = a.place(nan_h);
         float* is = a.place(nan_h);
         auto* z = a.place(bf_n);
         float* gx = a.place(grad_out);
         const auto* gemm = a.place(cx);
         const float* d = a.place(D);
         const float* skip_sums = a.place(bias);  // any {2H} values
         float* workspace = a.place(std::vector<float>(cuda::batch_norm_workspace(rows, hidden), NAN));
         cuda::column_moments(xs, rows, hidden, 1e-5f, m, v, is, workspace, kStream);
         cuda::batch_norm_cast(xs, m, is, z, Storage::kBFloat16, rows, hidden, kStream);
         cuda::batch_norm_backward(gx, gemm, Storage::kBFloat16, ew::NormInput{xs, m, is}, d, skip_sums, workspace,
                                   rows, hidden, kStream);
         return Bits{float_bits(m, hidden), float_bits(v, hidden), float_bits(is, hidden), float_bits(z, n),
                     float_bits(gx, n)};
       },
       {2, 7, 8}},
      {"glu_residual forward and backward (bias sums last)",
       [&](PlacedArrays& a) {
         const auto* v = a.place(vg);
         const float* xs = a.place(x);
         const uint8_t* keep = a.place(mask);
         const float* b = a.place(bias);
         const float* go = a.place(grad_out);
         float* out = a.place(nan_n);
         auto* gvg = a.place(bf_2n);
         float* gb = a.place(nan_2h);
         float* workspace = a.place(std::vector<float>(cuda::glu_residual_workspace(rows, hidden), NAN));
         cuda::glu_residual_forward(v, Storage::kBFloat16, xs, out, rows, hidden, keep, scale, kStream, b);
         cuda::glu_residual_backward(v, Storage::kBFloat16, go, gvg, rows, hidden, keep, scale, kStream, b, gb,
                                     workspace);
         return Bits{float_bits(out, n), float_bits(gvg, 2 * n), float_bits(gb, 2 * hidden)};
       },
       {7, 8}},
  };
  for (const Op& op : ops) {
    SCOPED_TRACE(op.name);
    PlacedArrays aligned{-1, {}};
    const long long before = compressm::cuda_emulator::threads_launched();
    const Bits want = op.run(aligned);
    const long long four_wide_threads = compressm::cuda_emulator::threads_launched() - before;
    const int arrays = static_cast<int>(aligned.buffers.size());
    const bool glu = std::string(op.name).rfind("glu", 0) == 0;
    for (int k = 0; k < arrays; ++k) {
      SCOPED_TRACE("array " + std::to_string(k) + " one element off");
      PlacedArrays off{k, {}};
      Bits got;
      const long long first = compressm::cuda_emulator::threads_launched();
      ASSERT_NO_THROW(got = op.run(off));
      // The aligned run took the four-wide path (fewer threads, four
      // elements each), this one the scalar path unless only scalar code
      // touches array k.
      const long long threads = compressm::cuda_emulator::threads_launched() - first;
      if (std::count(op.scalar_only.begin(), op.scalar_only.end(), k) > 0)
        EXPECT_EQ(four_wide_threads, threads);
      else
        EXPECT_LT(four_wide_threads, threads);
      ASSERT_EQ(got.size(), want.size());
      for (size_t o = 0; o < want.size(); ++o) {
        if (glu && o + 1 == want.size()) {  // the bias sums: other threads' shares, within rounding
          std::vector<float> g(want[o].size()), w(want[o].size());
          std::memcpy(g.data(), got[o].data(), g.size() * sizeof(float));
          std::memcpy(w.data(), want[o].data(), w.size() * sizeof(float));
          expect_close(g, w, 1e-4, "bias sums");
        } else {
          EXPECT_EQ(got[o], want[o]) << "output " << o;
        }
      }
    }
  }
}

// glu_residual and lru_skip_gelu with their dropout drawn in the kernel
// (cuda::Dropout::draw) against the same kernels reading the mask that
// draw_keep_mask writes under the same Philox state: the same bits in every
// output (the factors are the same floats), four wide (H = 96) and one wide
// (H = 98), by value and from a captured state (pointers and an intragraph
// offset). And the draws are not a fixed pattern: another offset moves
// about a fifth of the factors (p = 0.2).
TEST(EmulatedCudaFusedOps, DropoutDrawnInTheKernelsIsTheMaskKernelsBits) {
  const uint64_t seed = 0x9e3779b97f4aull, offset = 24;
  const uint64_t threshold = philox::keep_threshold(0.8);
  const float scale = 1.f / 0.8f;
  for (const int64_t hidden : {int64_t{96}, int64_t{98}}) {
    SCOPED_TRACE("H = " + std::to_string(hidden));
    const int64_t rows = 777, n = rows * hidden;
    const auto x = random_floats(n, 130, -3.f, 5.f), D = random_floats(hidden, 131), grad_out = random_floats(n, 132);
    const auto mean = random_floats(hidden, 133), invstd = random_floats(hidden, 134, 0.5f, 2.f);
    const auto cx = to_bf16(random_floats(n, 135)), grad_g = to_bf16(random_floats(n, 136));
    const auto vg = to_bf16(random_floats(2 * n, 137, -3.f, 3.f));
    const auto bias = random_floats(2 * hidden, 138);
    const ew::NormInput u{x.data(), mean.data(), invstd.data()};
    // Every output of the four kernels under `dropout`.
    const auto outputs = [&](const cuda::Dropout& dropout) {
      std::vector<std::vector<uint32_t>> out;
      std::vector<uint16_t> g(n), gcx(n), gvg(2 * n);
      std::vector<float> gs(n), sums(2 * hidden), glu(n), gb(2 * hidden);
      std::vector<float> skip_workspace(cuda::lru_skip_workspace(rows, hidden));
      std::vector<float> glu_workspace(cuda::glu_residual_workspace(rows, hidden));
      cuda::lru_skip_gelu_forward(cx.data(), Storage::kBFloat16, D.data(), u, g.data(), rows, hidden, dropout,
                                  kStream);
      cuda::lru_skip_gelu_backward(grad_g.data(), cx.data(), Storage::kBFloat16, D.data(), u, grad_out.data(),
                                   gcx.data(), gs.data(), sums.data(), skip_workspace.data(), rows, hidden, dropout,
                                   kStream);
      cuda::glu_residual_forward(vg.data(), Storage::kBFloat16, x.data(), glu.data(), rows, hidden, dropout, kStream,
                                 bias.data());
      cuda::glu_residual_backward(vg.data(), Storage::kBFloat16, grad_out.data(), gvg.data(), rows, hidden, dropout,
                                  kStream, bias.data(), gb.data(), glu_workspace.data());
      out.push_back(float_bits(floats_of(g)));
      out.push_back(float_bits(floats_of(gcx)));
      out.push_back(float_bits(gs));
      out.push_back(float_bits(sums));
      out.push_back(float_bits(glu));
      out.push_back(float_bits(floats_of(gvg)));
      out.push_back(float_bits(gb));
      return out;
    };
    cuda::PhiloxSeed value;
    value.seed = seed;
    value.offset = offset;
    std::vector<uint8_t> mask(n);
    cuda::draw_keep_mask(mask.data(), n, value, threshold, kStream);
    const auto want = outputs(cuda::mask_dropout(mask.data(), scale));
    cuda::Dropout drawn = cuda::drawn_dropout(value, threshold, scale);
    EXPECT_EQ(outputs(drawn), want) << "drawn by value";
    const int64_t seed_value = static_cast<int64_t>(seed), offset_value = static_cast<int64_t>(offset - 8);
    cuda::PhiloxSeed in_graph;
    in_graph.seed_ptr = &seed_value;
    in_graph.offset_ptr = &offset_value;
    in_graph.offset_intragraph = 8;
    drawn.philox = in_graph;
    EXPECT_EQ(outputs(drawn), want) << "drawn from a captured state";
    // Another offset: the GLU's output differs where one of the two draws keeps and the other drops.
    drawn.philox = value;
    drawn.philox.offset = offset + 4;
    const auto other = outputs(drawn);
    int64_t moved = 0;
    for (size_t i = 0; i < other[4].size(); ++i) moved += other[4][i] != want[4][i];
    EXPECT_NEAR(static_cast<double>(moved) / static_cast<double>(n), 2 * 0.8 * 0.2, 0.03);
    // A mask and draws at once, or half a captured state: refused.
    cuda::Dropout both = cuda::drawn_dropout(value, threshold, scale);
    both.keep = mask.data();
    std::vector<float> out(n);
    EXPECT_THROW(cuda::glu_residual_forward(vg.data(), Storage::kBFloat16, x.data(), out.data(), rows, hidden, both,
                                            kStream),
                 std::invalid_argument);
    cuda::Dropout half = cuda::drawn_dropout(in_graph, threshold, scale);
    half.philox.offset_ptr = nullptr;
    EXPECT_THROW(cuda::glu_residual_forward(vg.data(), Storage::kBFloat16, x.data(), out.data(), rows, hidden, half,
                                            kStream),
                 std::invalid_argument);
  }
}

// The wide bf16 layer's operands and their gradients back: the kernels
// against the CPU loops and against the layout written out here (w_in rows
// (re, im) per state, w_out columns (C_re, -C_im) per state, zeros for the
// padding's states), with a partial thread block (N H = 37 x 29), the
// states unpadded, padded to 40 (3 x 2 x 29 = 174 padding elements, fewer
// than N H) and to 400 (more padding elements than N H: the grid is sized
// by the padding), and 5 rows of dL/dlambda parts.
TEST(EmulatedCudaFusedOps, LruBf16PackMatchesTheCpuLoopsAndTheLayout) {
  const int64_t state = 37, hidden = 29, rows = 5, nh = state * hidden;
  for (const int64_t padded : {state, int64_t{40}, int64_t{400}}) {
    SCOPED_TRACE("padded to " + std::to_string(padded));
    const int64_t ph = padded * hidden;
    const auto lre = random_floats(state, 95), lim = random_floats(state, 96);
    const auto bre = random_floats(nh, 97), bim = random_floats(nh, 98), cre = random_floats(nh, 99),
               cim = random_floats(nh, 100);
    std::vector<float> lambda(2 * padded, NAN), lambda_ref(2 * padded, NAN);
    std::vector<uint16_t> w_in(2 * ph, 0xffff), w_out(2 * ph, 0xffff);
    std::vector<c10::BFloat16> w_in_ref(2 * ph, c10::BFloat16(NAN)), w_out_ref(2 * ph, c10::BFloat16(NAN));
    cuda::lru_bf16_pack(lre.data(), lim.data(), bre.data(), bim.data(), cre.data(), cim.data(), state, padded, hidden,
                        lambda.data(), w_in.data(), w_out.data(), kStream);
    ew::lru_bf16_pack(lre.data(), lim.data(), bre.data(), bim.data(), cre.data(), cim.data(), state, padded, hidden,
                      lambda_ref.data(), w_in_ref.data(), w_out_ref.data());
    expect_close(lambda, lambda_ref, 0.0, "lambda");
    expect_close(floats_of(w_in), floats_of(bits_of(w_in_ref)), 0.0, "w_in");
    expect_close(floats_of(w_out), floats_of(bits_of(w_out_ref)), 0.0, "w_out");
    std::vector<float> in_layout(2 * ph, 0.f), out_layout(2 * ph, 0.f), lambda_layout(2 * padded, 0.f);
    for (int64_t n = 0; n < state; ++n) {
      lambda_layout[2 * n] = lre[n];
      lambda_layout[2 * n + 1] = lim[n];
      for (int64_t h = 0; h < hidden; ++h) {
        in_layout[(2 * n) * hidden + h] = static_cast<float>(c10::BFloat16(bre[n * hidden + h]));
        in_layout[(2 * n + 1) * hidden + h] = static_cast<float>(c10::BFloat16(bim[n * hidden + h]));
        out_layout[h * 2 * padded + 2 * n] = static_cast<float>(c10::BFloat16(cre[h * state + n]));
        out_layout[h * 2 * padded + 2 * n + 1] = static_cast<float>(c10::BFloat16(-cim[h * state + n]));
      }
    }
    expect_close(lambda, lambda_layout, 0.0, "lambda layout");
    expect_close(floats_of(w_in), in_layout, 0.0, "w_in layout");
    expect_close(floats_of(w_out), out_layout, 0.0, "w_out layout");

    // Back: the padding's gradients (random here) are left out.
    const auto grad_in = to_bf16(random_floats(2 * ph, 101)), grad_out = to_bf16(random_floats(2 * ph, 102));
    const auto parts = random_floats(rows * padded * 2, 103);
    std::vector<std::vector<float>> g(6), g_ref(6);
    for (int k = 0; k < 6; ++k) {
      g[k].assign(k < 2 ? state : nh, NAN);
      g_ref[k].assign(k < 2 ? state : nh, NAN);
    }
    cuda::lru_bf16_unpack_gradients(grad_in.data(), grad_out.data(), parts.data(), rows, state, padded, hidden,
                                    g[0].data(), g[1].data(), g[2].data(), g[3].data(), g[4].data(), g[5].data(),
                                    kStream);
    ew::lru_bf16_unpack_gradients(grad_in.data(), grad_out.data(), parts.data(), rows, state, padded, hidden,
                                  g_ref[0].data(), g_ref[1].data(), g_ref[2].data(), g_ref[3].data(), g_ref[4].data(),
                                  g_ref[5].data());
    const char* names[6] = {"lambda_re", "lambda_im", "B_re", "B_im", "C_re", "C_im"};
    for (int k = 0; k < 6; ++k) expect_close(g[k], g_ref[k], 0.0, names[k]);
    // The layout: the transpose of the packing, C_im's sign undone, the parts summed.
    for (int64_t n = 0; n < state; ++n) {
      double re = 0, im = 0;
      for (int64_t r = 0; r < rows; ++r) {
        re += parts[(r * padded + n) * 2];
        im += parts[(r * padded + n) * 2 + 1];
      }
      EXPECT_NEAR(g[0][n], re, 1e-5);
      EXPECT_NEAR(g[1][n], im, 1e-5);
      for (int64_t h = 0; h < hidden; ++h) {
        EXPECT_EQ(g[2][n * hidden + h], static_cast<float>(grad_in[(2 * n) * hidden + h]));
        EXPECT_EQ(g[3][n * hidden + h], static_cast<float>(grad_in[(2 * n + 1) * hidden + h]));
        EXPECT_EQ(g[4][h * state + n], static_cast<float>(grad_out[h * 2 * padded + 2 * n]));
        EXPECT_EQ(g[5][h * state + n], -static_cast<float>(grad_out[h * 2 * padded + 2 * n + 1]));
      }
    }
  }
  std::vector<float> none(8);
  EXPECT_THROW(cuda::lru_bf16_pack(none.data(), none.data(), none.data(), none.data(), none.data(), none.data(), 2, 1,
                                   2, none.data(), none.data(), none.data(), kStream),
               std::invalid_argument);
}

// The block's BatchNorm: moments against the CPU loop and a float64 two-pass
// computation (columns with a large mean), the bfloat16 cast, and the
// backward pass with and without the residual's gradient, against the CPU
// loop and the float64 formula; 777 rows (partial last part) and 5 rows.
// Narrow channels: the merge's tiles of 5 columns leave 256 % 5 threads
// without a row group (777 rows: 195 parts in 51 groups; 40 rows: 40 parts,
// one group in tiles of up to 256 columns).
TEST(EmulatedCudaFusedOps, ColumnMomentsOfNarrowChannelsMatchTheCpuLoops) {
  const int64_t hidden = 5;
  for (const int64_t rows : {int64_t{777}, int64_t{40}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows));
    const std::vector<float> x = random_floats(rows * hidden, 91, -3.f, 5.f);
    std::vector<float> workspace(cuda::batch_norm_workspace(rows, hidden), NAN);
    std::vector<float> mean(hidden, NAN), var(hidden, NAN), invstd(hidden, NAN);
    std::vector<float> mean_ref(hidden), var_ref(hidden), invstd_ref(hidden);
    cuda::column_moments(x.data(), rows, hidden, 1e-5f, mean.data(), var.data(), invstd.data(), workspace.data(),
                         kStream);
    ew::column_moments(x.data(), rows, hidden, 1e-5f, mean_ref.data(), var_ref.data(), invstd_ref.data());
    expect_close(mean, mean_ref, 1e-5, "mean");
    expect_close(var, var_ref, 1e-5, "var");
    expect_close(invstd, invstd_ref, 1e-5, "invstd");
  }
}

TEST(EmulatedCudaFusedOps, BatchNormMatchesTheCpuLoopsAndFloat64) {
  const int64_t hidden = 300;
  // 777 rows: 195 parts (the merge's 8 row groups of 24-25 parts); 5 rows: 5
  // parts, taken by one group (tiles of up to 256 columns); 4100 rows: 242
  // parts of 17 rows, 8 groups of 30-31 parts: a round of 16 loaded ahead
  // and the rest one by one.
  for (const int64_t rows : {int64_t{777}, int64_t{5}, int64_t{4100}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows));
    const int64_t n = rows * hidden;
    std::vector<float> x = random_floats(n, 90);
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * (1.f + (i % hidden) % 7) + ((i % hidden) % 3 == 0 ? 100.f : 0.f);
    const float eps = 1e-5f;
    std::vector<float> workspace(cuda::batch_norm_workspace(rows, hidden), NAN);
    std::vector<float> mean(hidden, NAN), var(hidden, NAN), invstd(hidden, NAN);
    std::vector<float> mean_ref(hidden), var_ref(hidden), invstd_ref(hidden);
    cuda::column_moments(x.data(), rows, hidden, eps, mean.data(), var.data(), invstd.data(), workspace.data(),
                         kStream);
    ew::column_moments(x.data(), rows, hidden, eps, mean_ref.data(), var_ref.data(), invstd_ref.data());
    expect_close(mean, mean_ref, 1e-6, "mean");
    expect_close(var, var_ref, 1e-5, "var");
    expect_close(invstd, invstd_ref, 1e-5, "invstd");
    std::vector<double> mean64(hidden, 0.0), var64(hidden, 0.0);
    for (int64_t i = 0; i < n; ++i) mean64[i % hidden] += x[i] / double(rows);
    for (int64_t i = 0; i < n; ++i) var64[i % hidden] += std::pow(x[i] - mean64[i % hidden], 2) / double(rows);
    expect_close(mean, mean64, 1e-5, "mean against float64");
    expect_close(var, var64, 1e-4, "var against float64");
    // The running statistics updated by the merge (momentum 0.1, unbiased variance).
    {
      const auto r_mean0 = random_floats(hidden, 104), r_var0 = random_floats(hidden, 105, 0.5f, 2.f);
      std::vector<float> r_mean = r_mean0, r_var = r_var0, r_mean_ref = r_mean0, r_var_ref = r_var0;
      const float unbiased = static_cast<float>(double(rows) / double(rows - 1));
      std::vector<float> m(hidden), v(hidden), is(hidden);
      cuda::column_moments(x.data(), rows, hidden, eps, m.data(), v.data(), is.data(), workspace.data(), kStream,
                           ew::RunningStats{r_mean.data(), r_var.data(), 0.1f, unbiased});
      ew::column_moments(x.data(), rows, hidden, eps, m.data(), v.data(), is.data(),
                         ew::RunningStats{r_mean_ref.data(), r_var_ref.data(), 0.1f, unbiased});
      expect_close(r_mean, r_mean_ref, 1e-6, "running mean");
      expect_close(r_var, r_var_ref, 1e-6, "running var");
      std::vector<double> mean_exact(hidden), var_exact(hidden);
      for (int64_t h = 0; h < hidden; ++h) {
        mean_exact[h] = 0.9 * r_mean0[h] + 0.1 * mean64[h];
        var_exact[h] = 0.9 * r_var0[h] + 0.1 * var64[h] * double(rows) / double(rows - 1);
      }
      expect_close(r_mean, mean_exact, 1e-5, "running mean against float64");
      expect_close(r_var, var_exact, 1e-4, "running var against float64");
    }

    std::vector<uint16_t> ub(n, 0xffff);
    std::vector<c10::BFloat16> ub_ref(n);
    cuda::batch_norm_cast(x.data(), mean.data(), invstd.data(), ub.data(), Storage::kBFloat16, rows, hidden, kStream);
    ew::batch_norm_cast(x.data(), mean.data(), invstd.data(), ub_ref.data(), rows, hidden);
    expect_close(floats_of(ub), floats_of(bits_of(ub_ref)), 1.0 / 128, "bf16(u)");

    // The skip kernel's outputs as batch_norm_backward takes them, built
    // here from a random gp: grad_skip = grad_out + invstd D gp, skip_sums =
    // {sum of gp u, sum of gp}.
    const auto grad_out = random_floats(n, 91), gp = random_floats(n, 92), D = random_floats(hidden, 94);
    const auto grad_gemm = to_bf16(random_floats(n, 93));
    const ew::NormInput u{x.data(), mean.data(), invstd.data()};
    const auto u64 = [&](int64_t i) { return (x[i] - double(mean[i % hidden])) * invstd[i % hidden]; };
    std::vector<float> skip_sums(2 * hidden, 0.f);
    {
      std::vector<double> s64(2 * hidden, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        s64[i % hidden] += gp[i] * u64(i);
        s64[hidden + i % hidden] += gp[i];
      }
      for (int64_t k = 0; k < 2 * hidden; ++k) skip_sums[k] = static_cast<float>(s64[k]);
    }
    for (const bool residual : {true, false}) {
      SCOPED_TRACE(residual ? "with the residual's gradient" : "without");
      std::vector<float> gx(n), gx_ref;
      for (int64_t i = 0; i < n; ++i)
        gx[i] = ew::skip_input_gradient(residual ? grad_out[i] : 0.f, D[i % hidden], gp[i], u, i % hidden);
      gx_ref = gx;
      cuda::batch_norm_backward(gx.data(), grad_gemm.data(), Storage::kBFloat16, u, D.data(), skip_sums.data(),
                                workspace.data(), rows, hidden, kStream);
      ew::batch_norm_backward(gx_ref.data(), grad_gemm.data(), u, D.data(), skip_sums.data(), rows, hidden);
      expect_close(gx, gx_ref, 1e-5, "grad_x");
      // float64: dx = go + invstd (dz - mean(dz) - u mean(dz u)), dz = D gp + g_gemm.
      std::vector<double> mdz(hidden, 0.0), mdzu(hidden, 0.0), exact(n);
      const auto dz = [&](int64_t i) { return double(D[i % hidden]) * gp[i] + float(grad_gemm[i]); };
      for (int64_t i = 0; i < n; ++i) {
        mdz[i % hidden] += dz(i) / double(rows);
        mdzu[i % hidden] += dz(i) * u64(i) / double(rows);
      }
      for (int64_t i = 0; i < n; ++i)
        exact[i] = (residual ? grad_out[i] : 0.0) +
                   invstd[i % hidden] * (dz(i) - mdz[i % hidden] - u64(i) * mdzu[i % hidden]);
      expect_close(gx, exact, 1e-3, "grad_x against float64");
    }
  }
}

}  // namespace
}  // namespace compressm::kernels
