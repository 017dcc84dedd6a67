#include "runtime/model_file.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace compressm::runtime {
namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw ModelFileError(source + ": " + what);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

const std::string& metadata_value(const std::map<std::string, std::string>& metadata, const std::string& key,
                                  const std::string& source) {
  const auto found = metadata.find(key);
  if (found == metadata.end()) fail(source, "__metadata__ has no '" + key + "' (not a compressm export?)");
  return found->second;
}

// A decimal integer in [low, high]; digits only, so no sign, space or exponent.
int64_t parse_size(const std::string& text, int64_t low, int64_t high, const std::string& what,
                   const std::string& source) {
  const bool digits = !text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos;
  const int64_t value = digits ? std::stoll(text) : -1;
  if (!digits || value < low || value > high)
    fail(source, what + " is '" + shown_in_message(text.substr(0, 40)) + "', expected an integer in [" +
                     std::to_string(low) + ", " +
                     std::to_string(high) + "]");
  return value;
}

std::vector<int64_t> parse_state_dims(const std::string& text, const std::string& source) {
  if (text.size() > 16 * static_cast<size_t>(kMaxBlocks)) fail(source, "__metadata__ state_dims is too long");
  const nlohmann::json dims = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!dims.is_array() || dims.empty() || static_cast<int64_t>(dims.size()) > kMaxBlocks)
    fail(source, "__metadata__ state_dims is not a JSON array of 1 to " + std::to_string(kMaxBlocks) + " sizes");
  std::vector<int64_t> out;
  for (const auto& n : dims) {
    if (!n.is_number_unsigned() || n.get<uint64_t>() < 1 || n.get<uint64_t>() > static_cast<uint64_t>(kMaxStates))
      fail(source, "__metadata__ state_dims entry " + n.dump() + " is not an integer in [1, " +
                       std::to_string(kMaxStates) + "]");
    out.push_back(n.get<int64_t>());
  }
  return out;
}

// Row-major {rows, cols} values as a column-major Eigen matrix.
MatrixF to_matrix(const FloatTensor& t) {
  return Eigen::Map<const RowMajorF>(t.values.data(), t.shape.at(0), t.shape.at(1));
}

VectorF to_vector(const FloatTensor& t) {
  return Eigen::Map<const VectorF>(t.values.data(), static_cast<Eigen::Index>(t.values.size()));
}

void check_finite(const std::map<std::string, FloatTensor>& tensors, const std::string& source) {
  for (const auto& [name, tensor] : tensors)
    for (size_t i = 0; i < tensor.values.size(); ++i)
      if (!std::isfinite(tensor.values[i]))
        fail(source, "tensor '" + name + "' has a non-finite value (" + std::to_string(tensor.values[i]) +
                         ") at index " + std::to_string(i));
}

// The LRU parameters of one block in the forward pass's form. lambda and
// gamma are computed in float with the same operations as LibTorch's forward
// (nn/lru_layer.cpp): rounding the phase exp(theta_log) to float moves lambda
// by ~1e-7, enough to change the logits at 1e-6 over long sequences, and the
// trained model is the one that saw LibTorch's rounding.
void load_lru(BlockWeights& w, const std::map<std::string, FloatTensor>& t, const std::string& prefix,
              const std::string& source) {
  const VectorF nu_log = to_vector(t.at(prefix + "nu_log"));
  const VectorF theta_log = to_vector(t.at(prefix + "theta_log"));
  const VectorF gamma_log = to_vector(t.at(prefix + "gamma_log"));
  const Eigen::Index n = nu_log.size();
  w.lambda_re.resize(n);
  w.lambda_im.resize(n);
  VectorF gamma(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    // |lambda| = exp(-exp(nu_log)) <= 1 for every finite nu_log (exactly 1 in
    // float for nu_log below about -17, and cos/sin may round |lambda| up by
    // an ulp: a marginal mode, not a growing one over any practical length).
    const float radius = std::exp(-std::exp(nu_log[i]));
    const float phase = std::exp(theta_log[i]);
    w.lambda_re[i] = radius * std::cos(phase);
    w.lambda_im[i] = radius * std::sin(phase);
    gamma[i] = std::exp(gamma_log[i]);
    if (!std::isfinite(w.lambda_re[i]) || !std::isfinite(w.lambda_im[i]))
      fail(source, "tensor '" + prefix + "theta_log' entry " + std::to_string(i) + " gives a non-finite eigenvalue");
    if (!std::isfinite(gamma[i]))
      fail(source, "tensor '" + prefix + "gamma_log' entry " + std::to_string(i) + " overflows exp()");
  }
  const Eigen::Index h = t.at(prefix + "B_re").shape.at(1);
  w.b.resize(2 * n, h);
  w.b.topRows(n) = gamma.asDiagonal() * to_matrix(t.at(prefix + "B_re"));
  w.b.bottomRows(n) = gamma.asDiagonal() * to_matrix(t.at(prefix + "B_im"));
  if (!w.b.allFinite()) fail(source, "tensor '" + prefix + "gamma_log' scales B beyond the float range");
  w.c_t.resize(2 * n, h);
  w.c_t.topRows(n) = to_matrix(t.at(prefix + "C_re")).transpose();
  w.c_t.bottomRows(n) = -to_matrix(t.at(prefix + "C_im")).transpose();
  w.d = to_vector(t.at(prefix + "D"));
}

BlockWeights load_block(const std::map<std::string, FloatTensor>& t, int64_t b, double eps,
                        const std::string& source) {
  const std::string prefix = "blocks." + std::to_string(b) + ".";
  BlockWeights w;
  const VectorF mean = to_vector(t.at(prefix + "norm.running_mean"));
  const VectorF var = to_vector(t.at(prefix + "norm.running_var"));
  if ((var.array() < 0).any()) fail(source, "tensor '" + prefix + "norm.running_var' has a negative variance");
  // (x - mean) / sqrt(var + eps) = x * scale + shift
  w.norm_scale = (var.cast<double>().array() + eps).rsqrt().cast<float>();
  w.norm_shift = -mean.cwiseProduct(w.norm_scale);
  load_lru(w, t, prefix + "lru.", source);
  w.glu_value_weight = to_matrix(t.at(prefix + "glu_value.weight"));
  w.glu_value_bias = to_vector(t.at(prefix + "glu_value.bias"));
  w.glu_gate_weight = to_matrix(t.at(prefix + "glu_gate.weight"));
  w.glu_gate_bias = to_vector(t.at(prefix + "glu_gate.bias"));
  if (!w.norm_shift.allFinite()) fail(source, "tensor '" + prefix + "norm.running_mean' is too large to normalise");
  return w;
}

}  // namespace

std::map<std::string, std::string> model_metadata(const Architecture& a, const std::string& config_yaml,
                                                  const std::string& dataset, int64_t seed) {
  return {{"format", kFormatName},
          {"format_version", kFormatVersion},
          {"input_dim", std::to_string(a.input_dim)},
          {"vocab_size", std::to_string(a.vocab_size)},
          {"num_classes", std::to_string(a.num_classes)},
          {"hidden_dim", std::to_string(a.hidden_dim)},
          {"batchnorm_eps", nlohmann::json(a.batchnorm_eps).dump()},  // shortest text that reads back
          {"state_dims", nlohmann::json(a.state_dims).dump()},
          {"dataset", dataset},
          {"seed", std::to_string(seed)},
          {"config_yaml", config_yaml}};
}

Architecture parse_architecture(const std::map<std::string, std::string>& m, const std::string& source) {
  if (metadata_value(m, "format", source) != kFormatName)
    fail(source, "__metadata__ format is '" + shown_in_message(m.at("format").substr(0, 40)) + "', expected '" +
                     kFormatName + "'");
  if (metadata_value(m, "format_version", source) != kFormatVersion)
    fail(source, "__metadata__ format_version is '" + shown_in_message(m.at("format_version").substr(0, 40)) +
                     "', this runtime reads " +
                     kFormatVersion);
  Architecture a;
  a.vocab_size = parse_size(metadata_value(m, "vocab_size", source), 0, kMaxVocabulary, "vocab_size", source);
  a.input_dim = parse_size(metadata_value(m, "input_dim", source), 1, kMaxWidth, "input_dim", source);
  if (a.vocab_size > 0 && a.input_dim != 1) fail(source, "a token model (vocab_size > 0) must have input_dim 1");
  a.num_classes = parse_size(metadata_value(m, "num_classes", source), 1, kMaxClasses, "num_classes", source);
  a.hidden_dim = parse_size(metadata_value(m, "hidden_dim", source), 1, kMaxWidth, "hidden_dim", source);
  a.state_dims = parse_state_dims(metadata_value(m, "state_dims", source), source);
  const std::string& eps = metadata_value(m, "batchnorm_eps", source);
  // A plain decimal (from_chars: no space, sign, hex form or trailing bytes), as export writes it.
  const auto [end, error] = std::from_chars(eps.data(), eps.data() + eps.size(), a.batchnorm_eps);
  if (eps.empty() || error != std::errc() || end != eps.data() + eps.size() ||
      !(a.batchnorm_eps > 0 && a.batchnorm_eps <= 1))
    fail(source, "__metadata__ batchnorm_eps is '" + shown_in_message(eps.substr(0, 40)) +
                     "', expected a number in (0, 1]");
  return a;
}

std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(const Architecture& a) {
  const int64_t h = a.hidden_dim;
  std::map<std::string, std::vector<int64_t>> shapes;
  if (a.vocab_size > 0) {
    shapes["embedding.weight"] = {a.vocab_size, h};
  } else {
    shapes["encoder.weight"] = {h, a.input_dim};
    shapes["encoder.bias"] = {h};
  }
  for (int64_t b = 0; b < a.num_blocks(); ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    const int64_t n = a.state_dims[static_cast<size_t>(b)];
    shapes[p + "norm.running_mean"] = shapes[p + "norm.running_var"] = {h};
    shapes[p + "lru.nu_log"] = shapes[p + "lru.theta_log"] = shapes[p + "lru.gamma_log"] = {n};
    shapes[p + "lru.B_re"] = shapes[p + "lru.B_im"] = {n, h};
    shapes[p + "lru.C_re"] = shapes[p + "lru.C_im"] = {h, n};
    shapes[p + "lru.D"] = {h};
    shapes[p + "glu_value.weight"] = shapes[p + "glu_gate.weight"] = {h, h};
    shapes[p + "glu_value.bias"] = shapes[p + "glu_gate.bias"] = {h};
  }
  shapes["head.weight"] = {a.num_classes, h};
  shapes["head.bias"] = {a.num_classes};
  return shapes;
}

ModelWeights model_weights(const TensorFile& file, const std::string& source) {
  ModelWeights w;
  w.architecture = parse_architecture(file.metadata, source);
  const Architecture& a = w.architecture;
  const auto expected = expected_tensor_shapes(a);
  for (const auto& [name, tensor] : file.tensors)
    if (!expected.count(name)) fail(source, "unexpected tensor '" + shown_in_message(name) + "' for this architecture");
  for (const auto& [name, shape] : expected) {
    const auto found = file.tensors.find(name);
    if (found == file.tensors.end()) fail(source, "no tensor '" + name + "'");
    if (found->second.shape != shape)
      fail(source, "tensor '" + name + "' has shape " + shape_text(found->second.shape) + ", expected " +
                       shape_text(shape) + " (from __metadata__)");
  }
  check_finite(file.tensors, source);
  const auto& t = file.tensors;
  if (a.vocab_size > 0) {
    const FloatTensor& e = t.at("embedding.weight");  // {vocab, H} row-major = {H, vocab} column-major
    w.embedding = Eigen::Map<const MatrixF>(e.values.data(), a.hidden_dim, a.vocab_size);
  } else {
    w.encoder_weight = to_matrix(t.at("encoder.weight"));
    w.encoder_bias = to_vector(t.at("encoder.bias"));
  }
  for (int64_t b = 0; b < a.num_blocks(); ++b) w.blocks.push_back(load_block(t, b, a.batchnorm_eps, source));
  w.head_weight = to_matrix(t.at("head.weight"));
  w.head_bias = to_vector(t.at("head.bias"));
  w.metadata = file.metadata;
  return w;
}

}  // namespace compressm::runtime
