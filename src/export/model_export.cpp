#include "export/model_export.h"

#include <torch/torch.h>

#include "runtime/model_file.h"

namespace compressm::exporting {
namespace {

runtime::FloatTensor to_float_tensor(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
  runtime::FloatTensor out;
  out.shape.assign(t.sizes().begin(), t.sizes().end());
  out.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return out;
}

// BatchNorm1d's eps of the first block (every block is built the same way).
double batchnorm_eps(const nn::LruModel& model) {
  for (const auto& item : model->named_modules())
    if (const auto* norm = item.value()->as<torch::nn::BatchNorm1dImpl>()) return norm->options.eps();
  return 1e-5;
}

}  // namespace

runtime::TensorFile model_tensor_file(const nn::LruModel& model, const std::string& config_yaml,
                                      const std::string& dataset, int64_t seed) {
  const nn::LruModelOptions& o = model->options();
  runtime::Architecture a;
  a.vocab_size = o.vocab_size;
  a.input_dim = o.vocab_size > 0 ? 1 : o.input_dim;
  a.num_classes = o.num_classes;
  a.hidden_dim = o.hidden_dim;
  a.state_dims = model->state_dims();
  a.batchnorm_eps = batchnorm_eps(model);
  runtime::TensorFile file;
  file.metadata = runtime::model_metadata(a, config_yaml, dataset, seed);
  for (const auto& item : model->named_parameters()) file.tensors[item.key()] = to_float_tensor(item.value());
  for (const auto& item : model->named_buffers())
    if (item.key().find("num_batches_tracked") == std::string::npos)
      file.tensors[item.key()] = to_float_tensor(item.value());
  return file;
}

std::string encode_model_file(const runtime::TensorFile& file, const std::string& source) {
  std::string bytes = runtime::encode_safetensors(file);
  runtime::model_weights(runtime::parse_safetensors(bytes, source), source);  // would the runtime load it?
  return bytes;
}

}  // namespace compressm::exporting
