// Seeded random model files for the runtime tests (no LibTorch), and a plain
// double-precision reference forward pass written straight from docs/design.md §1
// with loops over the raw tensors: the slow reference the runtime is compared with.
#pragma once

#include <cmath>
#include <complex>
#include <random>
#include <string>
#include <vector>

#include "runtime/model_file.h"

namespace compressm::testing {

using runtime::Architecture;
using runtime::FloatTensor;
using runtime::TensorFile;

inline Architecture small_architecture(std::vector<int64_t> state_dims = {12, 7}, int64_t vocab = 0) {
  Architecture a;
  a.vocab_size = vocab;
  a.input_dim = vocab > 0 ? 1 : 3;
  a.num_classes = 5;
  a.hidden_dim = 6;
  a.state_dims = std::move(state_dims);
  return a;
}

// Random tensors of the right shapes; LRU parameters drawn as the LRU init
// (|lambda| in [0.5, 0.99]), BatchNorm statistics away from (0, 1).
inline TensorFile random_model_file(const Architecture& a, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  TensorFile file;
  file.metadata = runtime::model_metadata(a, "dataset: digits\n", "digits", 0);
  for (const auto& [name, shape] : runtime::expected_tensor_shapes(a)) {
    FloatTensor& t = file.tensors[name];
    t.shape = shape;
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const std::string leaf = name.substr(name.rfind('.') + 1);
    for (int64_t i = 0; i < count; ++i) {
      const double radius = 0.5 + 0.49 * unit(rng);
      float v = 0.5f * normal(rng);
      if (leaf == "nu_log") v = static_cast<float>(std::log(-std::log(radius)));
      if (leaf == "theta_log") v = static_cast<float>(std::log(6.28 * unit(rng) + 1e-3));
      if (leaf == "gamma_log") v = static_cast<float>(std::log(std::sqrt(1 - radius * radius)));
      if (leaf == "running_var") v = static_cast<float>(0.2 + 2 * unit(rng));
      if (leaf == "running_mean") v = 0.3f + 0.5f * normal(rng);
      t.values.push_back(v);
    }
  }
  return file;
}

using Activations = std::vector<std::vector<double>>;  // {L, H}

// One block of the model on h {L, H}, in place, straight from the formulas.
inline void reference_block(const TensorFile& file, const Architecture& a, int64_t b, Activations& h) {
  auto T = [&](const std::string& name) -> const std::vector<float>& { return file.tensors.at(name).values; };
  const std::string p = "blocks." + std::to_string(b) + ".";
  const int64_t H = a.hidden_dim, N = a.state_dims[b];
  std::vector<std::complex<double>> x(N);
  for (auto& row : h) {
    std::vector<double> z(H), g(H);
    for (int64_t j = 0; j < H; ++j)
      z[j] = (row[j] - T(p + "norm.running_mean")[j]) / std::sqrt(T(p + "norm.running_var")[j] + a.batchnorm_eps);
    for (int64_t n = 0; n < N; ++n) {
      // Exact: exp(nu_log), exp(theta_log) in double (the runtime rounds them as LibTorch does).
      const std::complex<double> lambda = std::exp(std::complex<double>(-std::exp(double(T(p + "lru.nu_log")[n])),
                                                                        std::exp(double(T(p + "lru.theta_log")[n]))));
      std::complex<double> bu = 0;
      for (int64_t j = 0; j < H; ++j)
        bu += std::complex<double>(T(p + "lru.B_re")[n * H + j], T(p + "lru.B_im")[n * H + j]) * z[j];
      x[n] = lambda * x[n] + std::exp(double(T(p + "lru.gamma_log")[n])) * bu;
    }
    for (int64_t j = 0; j < H; ++j) {
      std::complex<double> cx = 0;
      for (int64_t n = 0; n < N; ++n)
        cx += std::complex<double>(T(p + "lru.C_re")[j * N + n], T(p + "lru.C_im")[j * N + n]) * x[n];
      const double y = cx.real() + T(p + "lru.D")[j] * z[j];
      g[j] = 0.5 * y * (1 + std::erf(y / std::sqrt(2.0)));
    }
    for (int64_t j = 0; j < H; ++j) {
      double v = T(p + "glu_value.bias")[j], gate = T(p + "glu_gate.bias")[j];
      for (int64_t k = 0; k < H; ++k) {
        v += T(p + "glu_value.weight")[j * H + k] * g[k];
        gate += T(p + "glu_gate.weight")[j * H + k] * g[k];
      }
      row[j] += v / (1 + std::exp(-gate));
    }
  }
}

// inputs {L, input_dim} row-major -> logits, in double, one loop per formula.
inline std::vector<double> reference_logits(const TensorFile& file, const Architecture& a,
                                            const std::vector<float>& inputs, int64_t length) {
  auto T = [&](const std::string& name) -> const std::vector<float>& { return file.tensors.at(name).values; };
  const int64_t H = a.hidden_dim;
  Activations h(length, std::vector<double>(H));
  for (int64_t t = 0; t < length; ++t)
    for (int64_t j = 0; j < H; ++j) {
      if (a.vocab_size > 0) {
        h[t][j] = T("embedding.weight")[static_cast<size_t>(inputs[t]) * H + j];
        continue;
      }
      double s = T("encoder.bias")[j];
      for (int64_t c = 0; c < a.input_dim; ++c) s += T("encoder.weight")[j * a.input_dim + c] * inputs[t * a.input_dim + c];
      h[t][j] = s;
    }
  for (int64_t b = 0; b < a.num_blocks(); ++b) reference_block(file, a, b, h);
  std::vector<double> logits(a.num_classes);
  for (int64_t k = 0; k < a.num_classes; ++k) {
    double s = T("head.bias")[k];
    for (int64_t j = 0; j < H; ++j) {
      double mean = 0;
      for (int64_t t = 0; t < length; ++t) mean += h[t][j];
      s += T("head.weight")[k * H + j] * mean / length;
    }
    logits[k] = s;
  }
  return logits;
}

// max |a - b| / max |b|: the relative error of a vector.
template <typename A>
double relative_error(const A& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / scale;
}

}  // namespace compressm::testing
