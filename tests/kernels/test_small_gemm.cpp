// The register-tiled block products of the fused LRU layer against plain loops,
// with row lengths that use both the 4-vector tiles and the 1-vector tail.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/small_gemm.h"

namespace compressm::kernels::small_gemm {
namespace {

template <class T>
std::vector<T> random_vector(int64_t size, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  std::vector<T> v(size);
  for (T& x : v) x = static_cast<T>(normal(rng));
  return v;
}

template <class T>
double max_relative(const std::vector<T>& a, const std::vector<double>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

template <class T>
void expect_products_match(double tolerance) {
  std::mt19937 rng(7);
  const int64_t rows = 12, k = 8, s = 5 * Vec<T>::width;  // one 4-vector tile + one tail vector
  const auto a = random_vector<T>(rows * k, rng), m = random_vector<T>(k * s, rng);
  const auto x = random_vector<T>(rows * s, rng), m0 = random_vector<T>(k * s, rng);

  std::vector<T> out(rows * s);
  expand(a.data(), k, m.data(), out.data(), rows, k, s);
  std::vector<double> ref(rows * s, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < k; ++q)
      for (int64_t j = 0; j < s; ++j) ref[r * s + j] += double(a[r * k + q]) * m[q * s + j];
  EXPECT_LT(max_relative(out, ref), tolerance);

  std::vector<T> dots(rows * k);
  contract(x.data(), m.data(), dots.data(), k, rows, k, s);
  std::vector<double> ref_dots(rows * k, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < k; ++q)
      for (int64_t j = 0; j < s; ++j) ref_dots[r * k + q] += double(x[r * s + j]) * m[q * s + j];
  EXPECT_LT(max_relative(dots, ref_dots), tolerance);

  std::vector<T> acc = m0;
  accumulate_outer(a.data(), k, x.data(), acc.data(), rows, k, s);
  std::vector<double> ref_acc(m0.begin(), m0.end());
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t q = 0; q < k; ++q)
      for (int64_t j = 0; j < s; ++j) ref_acc[q * s + j] += double(a[t * k + q]) * x[t * s + j];
  EXPECT_LT(max_relative(acc, ref_acc), tolerance);
}

TEST(SmallGemm, MatchesPlainLoopsFloat64) { expect_products_match<double>(1e-14); }
TEST(SmallGemm, MatchesPlainLoopsFloat32) { expect_products_match<float>(1e-6); }

}  // namespace
}  // namespace compressm::kernels::small_gemm
