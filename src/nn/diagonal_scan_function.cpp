#include "nn/diagonal_scan_function.h"

#include <ATen/record_function.h>
#include <torch/autograd.h>

#include "kernels/diagonal_scan.h"
#include "nn/cuda_ops.h"

namespace compressm::nn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

kernels::ScanShape shape_of(const torch::Tensor& u) { return {u.size(0), u.size(1), u.size(2)}; }

template <class T>
std::complex<T>* data(torch::Tensor& t) {
  return reinterpret_cast<std::complex<T>*>(t.data_ptr<c10::complex<T>>());
}
template <class T>
const std::complex<T>* data(const torch::Tensor& t) {
  return reinterpret_cast<const std::complex<T>*>(t.data_ptr<c10::complex<T>>());
}

torch::Tensor forward_kernel(const torch::Tensor& lambda, const torch::Tensor& u) {
  torch::Tensor x = torch::empty_like(u);
  if (u.scalar_type() == torch::kComplexDouble)
    kernels::diagonal_scan_forward(data<double>(lambda), data<double>(u), data<double>(x), shape_of(u));
  else
    kernels::diagonal_scan_forward(data<float>(lambda), data<float>(u), data<float>(x), shape_of(u));
  return x;
}

struct DiagonalScanFunction : public torch::autograd::Function<DiagonalScanFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& lambda,
                               const torch::Tensor& u) {
    RECORD_USER_SCOPE("compressm::diagonal_scan_forward");
    torch::Tensor x = forward_kernel(lambda, u);
    ctx->save_for_backward({lambda, x});
    return x;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    RECORD_USER_SCOPE("compressm::diagonal_scan_backward");
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& lambda = saved[0];
    const torch::Tensor& x = saved[1];
    const torch::Tensor grad_x = grad_outputs[0].resolve_conj().contiguous();
    torch::Tensor grad_u = torch::empty_like(x);
    torch::Tensor grad_lambda = torch::empty_like(lambda);
    if (x.scalar_type() == torch::kComplexDouble)
      kernels::diagonal_scan_backward(data<double>(lambda), data<double>(x), data<double>(grad_x),
                                      data<double>(grad_u), data<double>(grad_lambda), shape_of(x));
    else
      kernels::diagonal_scan_backward(data<float>(lambda), data<float>(x), data<float>(grad_x),
                                      data<float>(grad_u), data<float>(grad_lambda), shape_of(x));
    return {grad_lambda, grad_u};
  }
};

// Validation at the boundary; the kernel itself checks nothing.
void check_arguments(const torch::Tensor& lambda, const torch::Tensor& u) {
  TORCH_CHECK(u.dim() == 3, "diagonal_scan: u must be {B, L, N}, got ", u.sizes());
  TORCH_CHECK(lambda.dim() == 1 && lambda.size(0) == u.size(2),
              "diagonal_scan: lambda must be {N} with N = ", u.size(2), ", got ", lambda.sizes());
  TORCH_CHECK(u.scalar_type() == torch::kComplexFloat || u.scalar_type() == torch::kComplexDouble,
              "diagonal_scan: u must be complex64 or complex128, got ", u.scalar_type());
  TORCH_CHECK(lambda.scalar_type() == u.scalar_type(),
              "diagonal_scan: lambda and u must have the same dtype");
  TORCH_CHECK(lambda.device() == u.device(), "diagonal_scan: lambda and u must be on the same device");
  TORCH_CHECK(u.device().is_cpu() || (u.is_cuda() && u.scalar_type() == torch::kComplexFloat),
              "diagonal_scan: CPU tensors, or complex64 CUDA tensors");
}

}  // namespace

torch::Tensor diagonal_scan(const torch::Tensor& lambda, const torch::Tensor& u) {
  check_arguments(lambda, u);
  // resolve_conj: a conj view keeps its conj bit through contiguous(), and
  // the kernels read the data as stored.
  const torch::Tensor l = lambda.resolve_conj().contiguous(), v = u.resolve_conj().contiguous();
  if (u.is_cuda()) return cuda_ops::diagonal_scan(l, v);
  return DiagonalScanFunction::apply(l, v);
}

torch::Tensor diagonal_scan_reference(const torch::Tensor& lambda, const torch::Tensor& u) {
  check_arguments(lambda, u);
  std::vector<torch::Tensor> states;
  torch::Tensor x = torch::zeros({u.size(0), u.size(2)}, u.options());
  for (const torch::Tensor& uk : u.unbind(1)) {
    x = lambda * x + uk;
    states.push_back(x);
  }
  return torch::stack(states, 1);
}

}  // namespace compressm::nn
