#include "linalg/hankel.h"

#include <stdexcept>
#include <string>

#include "linalg/dense_kernels_internal.h"
#include "linalg/gramians.h"
#include "linalg/stability.h"
#include "linalg/stopwatch.h"

namespace compressm::linalg {

SquareRootBalancing square_root_balancing(const MatrixXc& p, const MatrixXc& q,
                                          const VectorCountRule& vectors, Backend backend) {
  require_finite(p, "controllability Gramian");
  require_finite(q, "observability Gramian");
  Stopwatch watch;
  GramianFactor lc = psd_factor(p, backend);
  GramianFactor lo = psd_factor(q, backend);
  const double factor_ms = watch.lap_ms();
  SquareRootBalancing out = square_root_balancing(std::move(lc), std::move(lo), vectors, backend);
  out.timing.factor_ms = factor_ms;
  return out;
}

SquareRootBalancing square_root_balancing(GramianFactor lc, GramianFactor lo,
                                          const VectorCountRule& vectors, Backend backend) {
  const Eigen::Index n = lc.L.rows();
  SquareRootBalancing out;
  Stopwatch watch;
  require_finite(lc.L, "controllability Gramian's factor");
  require_finite(lo.L, "observability Gramian's factor");
  out.Lc = std::move(lc);
  out.Lo = std::move(lo);
  // M = Lo^H Lc {rank_o, rank_c}; its singular values are the HSVs. Every
  // state outside the controllable or observable subspace adds a zero HSV.
  const MatrixXc m = factor_multiply(out.Lo, /*adjoint_f=*/true, out.Lc.L, backend);
  require_finite(m, "product of the Gramian factors");
  out.timing.product_ms = watch.lap_ms();
  const Eigen::Index available = std::min(m.rows(), m.cols());
  auto padded = [n, available](const VectorXd& s) {
    VectorXd hsv = VectorXd::Zero(n);
    hsv.head(available) = s.cwiseMax(0.0);
    return hsv;
  };
  VectorCountRule clamped;  // stays empty (values only) when the caller wants no vectors
  if (vectors)
    clamped = [&](const VectorXd& s) { return std::min(vectors(padded(s)), available); };
  PartialSvd svd = partial_svd(m, clamped, backend);
  out.hsv = padded(svd.singular_values);
  out.timing.svd_ms = watch.lap_ms();
  out.U = std::move(svd.U);
  out.V = std::move(svd.V);
  return out;
}

VectorXd hankel_singular_values(const DiagonalSystem& system, Backend backend) {
  return square_root_balancing(controllability_gramian(system), observability_gramian(system),
                               VectorCountRule{}, backend)
      .hsv;
}

VectorXd hankel_singular_values(const DenseSystem& system, Backend backend) {
  auto [lc, lo] = gramian_factors(system, backend);
  return square_root_balancing(std::move(lc), std::move(lo), VectorCountRule{}, backend).hsv;
}

std::pair<GramianFactor, GramianFactor> gramian_factors(const DiagonalSystem& system,
                                                        Backend backend) {
  return {psd_factor(controllability_gramian(system), backend),
          psd_factor(observability_gramian(system), backend)};
}

std::pair<GramianFactor, GramianFactor> gramian_factors(const DenseSystem& system, Backend) {
  auto [lc, lo] = gramian_factor_pair(system);
  return {GramianFactor{std::move(lc), false}, GramianFactor{std::move(lo), false}};
}

}  // namespace compressm::linalg
