#include "nn/lru_layer.h"

#include <cmath>
#include <stdexcept>

#include "kernels/cuda/lru_cuda.h"
#include "nn/fused_ops.h"

namespace compressm::nn {
namespace {

torch::Tensor to_tensor(const Eigen::MatrixXd& m) {
  // Eigen is column-major; build row-major {rows, cols} float32.
  torch::Tensor t = torch::empty({m.rows(), m.cols()}, torch::kDouble);
  auto a = t.accessor<double, 2>();
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) a[i][j] = m(i, j);
  return t.to(torch::kFloat);
}

torch::Tensor to_tensor(const Eigen::VectorXd& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kDouble)
      .to(torch::kFloat);
}

Eigen::MatrixXd to_matrix(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  Eigen::MatrixXd m(d.size(0), d.size(1));
  auto a = d.accessor<double, 2>();
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) m(i, j) = a[i][j];
  return m;
}

Eigen::VectorXd to_vector(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return Eigen::Map<const Eigen::VectorXd>(d.data_ptr<double>(), d.size(0));
}

}  // namespace

LruLayerImpl::LruLayerImpl(int64_t n, int64_t h, LruInit init) {
  // |lambda|^2 ~ U[r_min^2, r_max^2], arg ~ U[0, max_phase], gamma = sqrt(1 - |lambda|^2)
  const torch::Tensor radius_sq =
      init.r_min * init.r_min + torch::rand({n}) * (init.r_max * init.r_max - init.r_min * init.r_min);
  const torch::Tensor phase = init.max_phase * torch::rand({n});
  nu_log = register_parameter("nu_log", torch::log(-0.5 * torch::log(radius_sq)));
  theta_log = register_parameter("theta_log", torch::log(phase));
  gamma_log = register_parameter("gamma_log", torch::log(torch::sqrt(1.0 - radius_sq)));
  B_re = register_parameter("B_re", torch::randn({n, h}) / std::sqrt(2.0 * h));
  B_im = register_parameter("B_im", torch::randn({n, h}) / std::sqrt(2.0 * h));
  C_re = register_parameter("C_re", torch::randn({h, n}) / std::sqrt(double(n)));
  C_im = register_parameter("C_im", torch::randn({h, n}) / std::sqrt(double(n)));
  D = register_parameter("D", torch::randn({h}));
}

LruLayerInputs LruLayerImpl::inputs(const torch::Tensor& u) const {
  // One fused op (fused_ops.h) where it computes.
  if (fused_ops_support(B_re)) {
    const auto [lambda_re, lambda_im, Bt_re, Bt_im] = lru_parameterize(nu_log, theta_log, gamma_log, B_re, B_im);
    return {lambda_re, lambda_im, Bt_re, Bt_im, C_re, C_im, D, u};
  }
  const torch::Tensor radius = torch::exp(-torch::exp(nu_log)), phase = torch::exp(theta_log);
  const torch::Tensor gamma = torch::exp(gamma_log).unsqueeze(1);
  return {radius * torch::cos(phase), radius * torch::sin(phase), gamma * B_re, gamma * B_im, C_re, C_im, D, u};
}

bool LruLayerImpl::bf16_projections(Precision precision, int64_t hidden) {
  return precision == Precision::kBf16 && hidden > kernels::cuda::kFusedMaxHidden;
}

torch::Tensor LruLayerImpl::forward(const torch::Tensor& u, Precision precision) {
  if (bf16_projections(precision, hidden_dim()) && u.scalar_type() == torch::kFloat)
    return lru_layer_bf16(inputs(u));
  return lru_layer(inputs(u));
}

torch::Tensor LruLayerImpl::forward_unfused(const torch::Tensor& u) { return lru_layer_unfused(inputs(u)); }

linalg::DiagonalSystem LruLayerImpl::to_system() const {
  linalg::LruParameters p;
  p.nu_log = to_vector(nu_log);
  p.theta_log = to_vector(theta_log);
  p.gamma_log = to_vector(gamma_log);
  p.B_re = to_matrix(B_re);
  p.B_im = to_matrix(B_im);
  p.C_re = to_matrix(C_re);
  p.C_im = to_matrix(C_im);
  p.D = to_vector(D);
  return linalg::lru_to_system(p);
}

void LruLayerImpl::load_parameters(const linalg::LruParameters& p) {
  torch::NoGradGuard no_grad;
  // The new tensors go where the layer is (the reduction runs on the CPU).
  auto replace = [this](const char* name, torch::Tensor& field, torch::Tensor value) {
    field = value.to(D.device()).set_requires_grad(true);
    parameters_[name] = field;  // OrderedDict entry keeps the registration order
  };
  replace("nu_log", nu_log, to_tensor(p.nu_log));
  replace("theta_log", theta_log, to_tensor(p.theta_log));
  replace("gamma_log", gamma_log, to_tensor(p.gamma_log));
  replace("B_re", B_re, to_tensor(p.B_re));
  replace("B_im", B_im, to_tensor(p.B_im));
  replace("C_re", C_re, to_tensor(p.C_re));
  replace("C_im", C_im, to_tensor(p.C_im));
  // D is not a state parameter: keep its tensor (and its optimiser moments).
  if (p.D.size() != hidden_dim()) throw std::invalid_argument("load_parameters: D has another size than H");
  D.copy_(to_tensor(p.D));  // copy_ crosses devices
}

void LruLayerImpl::keep_modes(const torch::Tensor& cpu_modes) {
  torch::NoGradGuard no_grad;
  const torch::Tensor modes = cpu_modes.to(nu_log.device());
  auto replace = [this](const char* name, torch::Tensor& field, torch::Tensor value) {
    field = value.contiguous().set_requires_grad(true);
    parameters_[name] = field;
  };
  replace("nu_log", nu_log, nu_log.index_select(0, modes));
  replace("theta_log", theta_log, theta_log.index_select(0, modes));
  replace("gamma_log", gamma_log, gamma_log.index_select(0, modes));
  replace("B_re", B_re, B_re.index_select(0, modes));
  replace("B_im", B_im, B_im.index_select(0, modes));
  replace("C_re", C_re, C_re.index_select(1, modes));
  replace("C_im", C_im, C_im.index_select(1, modes));
}

}  // namespace compressm::nn
