// The exported model file (`compressm export`): a safetensors file whose
// tensors carry the LibTorch parameter names and whose metadata describes the
// architecture (docs/design.md §1):
//
//   tensors   encoder.weight {H, input_dim}, encoder.bias {H}   (or embedding.weight {vocab, H})
//             blocks.<b>.norm.running_mean {H}, .running_var {H}  (BatchNorm1d, no affine)
//             blocks.<b>.lru.nu_log/theta_log/gamma_log {N_b}, B_re/B_im {N_b, H},
//                            C_re/C_im {H, N_b}, D {H}
//             blocks.<b>.glu_value.weight {H, H}, .bias {H}; blocks.<b>.glu_gate.* the same
//             head.weight {classes, H}, head.bias {classes}
//   metadata  format "compressm-lru", format_version "1", input_dim, vocab_size,
//             num_classes, hidden_dim, batchnorm_eps (decimal text), state_dims (JSON
//             text, N per block: a compressed model has fewer states than its config's
//             state_dim, and blocks may differ), dataset, seed, config_yaml (provenance).
//
// Everything is checked against everything else: a file is either a model this
// runtime computes with, or a ModelFileError naming the file and the problem.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/safetensors.h"

namespace compressm::runtime {

inline constexpr const char* kFormatName = "compressm-lru";
inline constexpr const char* kFormatVersion = "1";
// Largest sizes a model file may declare (checked before any allocation).
inline constexpr int64_t kMaxWidth = int64_t{1} << 16;      // input_dim, hidden_dim
inline constexpr int64_t kMaxStates = int64_t{1} << 20;     // N of one block
inline constexpr int64_t kMaxBlocks = 1024;
inline constexpr int64_t kMaxClasses = int64_t{1} << 20;
inline constexpr int64_t kMaxVocabulary = int64_t{1} << 24;

struct Architecture {
  int64_t input_dim = 1;    // channels per step (1 with a vocabulary: the token id)
  int64_t vocab_size = 0;   // > 0: token inputs through an embedding
  int64_t num_classes = 0;
  int64_t hidden_dim = 0;   // H
  std::vector<int64_t> state_dims;  // N per block
  double batchnorm_eps = 1e-5;
  int64_t num_blocks() const { return static_cast<int64_t>(state_dims.size()); }
};

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;  // column-major
using VectorF = Eigen::VectorXf;

// One block, in the form the forward pass uses.
struct BlockWeights {
  VectorF norm_scale, norm_shift;  // {H}: BatchNorm(x) = x * scale + shift, scale = 1/sqrt(var + eps)
  VectorF lambda_re, lambda_im;    // {N}: lambda = exp(-exp(nu_log) + i exp(theta_log))
  // Real forms of the complex projections, so each is one real product:
  MatrixF b;  // {2N, H}: rows [0, N) Re Bt, rows [N, 2N) Im Bt; Bt = diag(exp(gamma_log)) (B_re + i B_im)
  MatrixF c_t;  // {2N, H} = [C_re, -C_im]^T: Re(C x) = c_t^T [Re x; Im x] (H dot products)
  VectorF d;                       // {H}
  MatrixF glu_value_weight, glu_gate_weight;  // {H, H}
  VectorF glu_value_bias, glu_gate_bias;      // {H}
};

struct ModelWeights {
  Architecture architecture;
  MatrixF encoder_weight;  // {H, input_dim} (empty with a vocabulary)
  VectorF encoder_bias;    // {H}
  MatrixF embedding;       // {H, vocab}: column t is token t's vector
  std::vector<BlockWeights> blocks;
  MatrixF head_weight;     // {classes, H}
  VectorF head_bias;       // {classes}
  std::map<std::string, std::string> metadata;
};

// The metadata of a model file for `architecture`; `config_yaml`, `dataset`
// and `seed` are kept for provenance and for `compressm classify --dataset`.
std::map<std::string, std::string> model_metadata(const Architecture& architecture, const std::string& config_yaml,
                                                  const std::string& dataset, int64_t seed);

// The architecture the metadata declares (sizes within the limits above).
// Throws ModelFileError prefixed by `source`.
Architecture parse_architecture(const std::map<std::string, std::string>& metadata, const std::string& source);

// Tensor names and shapes a file of `architecture` must hold, exactly.
std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(const Architecture& architecture);

// Validates `file` (metadata, exact tensor set and shapes, finite values,
// running_var >= 0, finite derived lambda and Bt) and converts it. Throws
// ModelFileError prefixed by `source`.
ModelWeights model_weights(const TensorFile& file, const std::string& source);

}  // namespace compressm::runtime
