// Parity of the LAPACK backend against the Eigen reference backend.
#include <gtest/gtest.h>

#include <random>

#include "linalg/dense_kernels.h"

namespace compressm::linalg {
namespace {

MatrixXc random_matrix(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols) {
  std::normal_distribution<double> normal;
  MatrixXc m(rows, cols);
  for (Eigen::Index j = 0; j < cols; ++j)
    for (Eigen::Index i = 0; i < rows; ++i) m(i, j) = Complex(normal(rng), normal(rng));
  return m;
}

double relative_difference(const MatrixXc& a, const MatrixXc& b) {
  return (a - b).norm() / std::max(1e-300, b.norm());
}

class DenseKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!lapack_available()) GTEST_SKIP() << "built without LAPACK: nothing to compare";
  }
  std::mt19937_64 rng{7};
};

TEST_F(DenseKernels, GramMatricesMatch) {
  const MatrixXc a = random_matrix(rng, 37, 53);
  EXPECT_LT(relative_difference(gram_rows(a, Backend::Lapack), a * a.adjoint()), 1e-14);
  EXPECT_LT(relative_difference(gram_columns(a, Backend::Lapack), a.adjoint() * a), 1e-14);
  EXPECT_LT(relative_difference(gram_rows(a, Backend::Reference), a * a.adjoint()), 1e-14);
  EXPECT_LT(relative_difference(gram_columns(a, Backend::Reference), a.adjoint() * a), 1e-14);
}

TEST_F(DenseKernels, FactorOfDefiniteMatrixReconstructs) {
  const MatrixXc a = random_matrix(rng, 30, 40);
  const MatrixXc p = a * a.adjoint();
  for (Backend b : {Backend::Reference, Backend::Lapack}) {
    const GramianFactor f = psd_factor(p, b);
    EXPECT_TRUE(f.lower_triangular) << backend_name(b);
    EXPECT_EQ(f.rank(), 30);
    EXPECT_LT(relative_difference(f.L * f.L.adjoint(), p), 1e-13) << backend_name(b);
  }
}

TEST_F(DenseKernels, FactorOfSemidefiniteMatrixFindsRank) {
  const MatrixXc a = random_matrix(rng, 30, 7);  // rank 7
  MatrixXc p = a * a.adjoint();
  p.row(4).setZero();  // a state with no energy at all
  p.col(4).setZero();
  for (Backend b : {Backend::Reference, Backend::Lapack}) {
    const GramianFactor f = psd_factor(p, b);
    EXPECT_FALSE(f.lower_triangular) << backend_name(b);
    EXPECT_EQ(f.rank(), 7) << backend_name(b);
    EXPECT_TRUE(f.L.allFinite());
    EXPECT_LT(relative_difference(f.L * f.L.adjoint(), p), 1e-12) << backend_name(b);
    EXPECT_EQ(f.L.row(4).norm(), 0.0);
  }
}

TEST_F(DenseKernels, PartialSvdMatchesReference) {
  for (auto [rows, cols] : {std::pair{40, 40}, std::pair{50, 31}, std::pair{23, 44}}) {
    const MatrixXc m = random_matrix(rng, rows, cols);
    const Eigen::Index k = std::min(rows, cols) / 3;
    const PartialSvd fast = partial_svd(m, k, Backend::Lapack);
    const PartialSvd ref = partial_svd(m, k, Backend::Reference);
    ASSERT_EQ(fast.singular_values.size(), std::min(rows, cols));
    EXPECT_LT((fast.singular_values - ref.singular_values).norm() / ref.singular_values.norm(),
              1e-14);
    ASSERT_EQ(fast.U.cols(), k);
    ASSERT_EQ(fast.V.cols(), k);
    // Vectors are unique up to a phase each: compare M V = U S and orthonormality.
    const MatrixXc mv = m * fast.V;
    const MatrixXc us = fast.U * fast.singular_values.head(k).asDiagonal();
    EXPECT_LT(relative_difference(mv, us), 1e-13);
    EXPECT_LT((fast.U.adjoint() * fast.U - MatrixXc::Identity(k, k)).norm(), 1e-13);
    EXPECT_LT((fast.V.adjoint() * fast.V - MatrixXc::Identity(k, k)).norm(), 1e-13);
    // Same subspaces as the reference (distinct singular values here).
    EXPECT_LT(relative_difference(fast.U * fast.U.adjoint(), ref.U * ref.U.adjoint()), 1e-12);
  }
}

TEST_F(DenseKernels, PartialSvdRuleSeesSingularValues) {
  const MatrixXc m = random_matrix(rng, 20, 20);
  for (Backend b : {Backend::Reference, Backend::Lapack}) {
    VectorXd seen;
    const PartialSvd s = partial_svd(
        m, [&](const VectorXd& values) { seen = values; return Eigen::Index(5); }, b);
    EXPECT_EQ(seen.size(), 20);
    EXPECT_EQ(s.U.cols(), 5);
    EXPECT_EQ((seen - s.singular_values).norm(), 0.0);
  }
  EXPECT_THROW(partial_svd(m, 21, Backend::Lapack), std::invalid_argument);
}

TEST_F(DenseKernels, ValuesOnlySvdMatchesTheOneWithVectors) {
  const MatrixXc m = random_matrix(rng, 37, 29);
  for (Backend b : {Backend::Reference, Backend::Lapack}) {
    const PartialSvd values = partial_svd(m, VectorCountRule{}, b);
    const PartialSvd full = partial_svd(m, 29, b);
    EXPECT_EQ(values.U.cols(), 0) << backend_name(b);
    EXPECT_EQ(values.V.cols(), 0) << backend_name(b);
    ASSERT_EQ(values.singular_values.size(), 29) << backend_name(b);
    EXPECT_LT((values.singular_values - full.singular_values).norm() / full.singular_values.norm(),
              1e-14)
        << backend_name(b);
  }
  EXPECT_THROW(partial_svd(m, [](const VectorXd&) { return Eigen::Index(-1); }, Backend::Reference),
               std::invalid_argument);
}

TEST_F(DenseKernels, EigenDecompositionsAgree) {
  const MatrixXc a = random_matrix(rng, 25, 25);
  for (Backend b : {Backend::Reference, Backend::Lapack}) {
    const EigenDecomposition e = eigen_decomposition(a, b);
    EXPECT_LT(relative_difference(a * e.vectors, e.vectors * e.values.asDiagonal()), 1e-13)
        << backend_name(b);
    for (Eigen::Index j = 0; j < 25; ++j) EXPECT_NEAR(e.vectors.col(j).norm(), 1.0, 1e-14);
  }
}

}  // namespace
}  // namespace compressm::linalg
