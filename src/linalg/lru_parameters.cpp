#include "linalg/lru_parameters.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "linalg/eigenvalue_guards.h"

namespace compressm::linalg {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

std::string describe(Eigen::Index i, const char* what, double from, double to) {
  std::ostringstream s;
  s.precision(17);
  s << "state " << i << ": " << what << " " << from << " -> " << to;
  return s.str();
}

}  // namespace

double phase_in_zero_two_pi(Complex z) {
  double theta = std::arg(z);
  if (theta < 0.0) theta += kTwoPi;
  return theta;
}

void apply_eigenvalue_guards(VectorXc& mu, const LruGuardLimits& limits,
                             std::vector<GuardEvent>* guards) {
  auto report = [&](const char* guard, std::string detail) {
    if (guards) guards->push_back({guard, std::move(detail)});
  };
  for (Eigen::Index i = 0; i < mu.size(); ++i) {
    if (!std::isfinite(mu[i].real()) || !std::isfinite(mu[i].imag()))
      throw std::invalid_argument("eigenvalue " + std::to_string(i) + " is not finite");
    double radius = std::abs(mu[i]);
    double theta = phase_in_zero_two_pi(mu[i]);
    bool changed = false;
    if (radius > limits.max_radius) {  // also catches |mu| >= 1
      report("unit_circle", describe(i, "|mu| clamped", radius, limits.max_radius));
      radius = limits.max_radius;
      changed = true;
    }
    if (radius < limits.min_radius) {
      report("zero_radius", describe(i, "|mu| raised", radius, limits.min_radius));
      radius = limits.min_radius;
      changed = true;
    }
    if (theta < limits.min_phase) {  // real positive eigenvalue: log(arg) = -inf
      report("zero_phase", describe(i, "arg(mu) raised", theta, limits.min_phase));
      theta = limits.min_phase;
      changed = true;
    }
    if (changed) mu[i] = std::polar(radius, theta);
  }
}

LruParameters system_to_lru(const DiagonalSystem& system, std::vector<GuardEvent>* guards,
                            const LruGuardLimits& limits) {
  if (!system.lambda.allFinite() || !system.B.allFinite() || !system.C.allFinite() ||
      !system.D.allFinite())
    throw std::invalid_argument("system_to_lru: the system has non-finite entries");
  VectorXc mu = system.lambda;
  apply_eigenvalue_guards(mu, limits, guards);
  const Eigen::Index n = mu.size();
  LruParameters p;
  p.nu_log.resize(n);
  p.theta_log.resize(n);
  p.gamma_log.resize(n);
  p.B_re.resize(n, system.B.cols());
  p.B_im.resize(n, system.B.cols());
  for (Eigen::Index i = 0; i < n; ++i) {
    const double radius = std::abs(mu[i]);
    p.nu_log[i] = std::log(-std::log(radius));
    p.theta_log[i] = std::log(phase_in_zero_two_pi(mu[i]));
    const double gamma = std::sqrt((1.0 - radius) * (1.0 + radius));  // sqrt(1 - r^2), no cancellation
    p.gamma_log[i] = std::log(gamma);
    p.B_re.row(i) = system.B.row(i).real() / gamma;
    p.B_im.row(i) = system.B.row(i).imag() / gamma;
  }
  p.C_re = system.C.real();
  p.C_im = system.C.imag();
  p.D = system.D;
  return p;
}

DiagonalSystem lru_to_system(const LruParameters& p) {
  DiagonalSystem s;
  const Eigen::Index n = p.nu_log.size();
  s.lambda.resize(n);
  s.B.resize(n, p.B_re.cols());
  for (Eigen::Index i = 0; i < n; ++i) {
    s.lambda[i] = std::exp(Complex(-std::exp(p.nu_log[i]), std::exp(p.theta_log[i])));
    s.B.row(i) = std::exp(p.gamma_log[i]) *
                 (p.B_re.row(i).cast<Complex>() + Complex(0.0, 1.0) * p.B_im.row(i).cast<Complex>());
  }
  s.C = p.C_re.cast<Complex>() + Complex(0.0, 1.0) * p.C_im.cast<Complex>();
  s.D = p.D;
  return s;
}

bool all_finite(const LruParameters& p) {
  return p.nu_log.allFinite() && p.theta_log.allFinite() && p.gamma_log.allFinite() &&
         p.B_re.allFinite() && p.B_im.allFinite() && p.C_re.allFinite() && p.C_im.allFinite() &&
         p.D.allFinite();
}

}  // namespace compressm::linalg
