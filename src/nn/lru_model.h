// LRU block and the sequence classifier built from it (docs/design.md §1):
//   block: BatchNorm (no affine) -> LRU -> GELU -> dropout -> GLU -> dropout -> + residual
//   model: encoder (Linear, or Embedding for tokens) -> blocks -> mean over time -> Linear
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "nn/lru_layer.h"
#include "nn/precision.h"

namespace compressm::nn {

// How a block runs its element-wise work (GELU, dropout, GLU, residual):
//   kFused     the fused ops of fused_ops.h (one GEMM for both GLU halves)
//   kComposed  LibTorch's separate ops: the reference the fused ops are
//              tested and benchmarked against
//   kAuto      a narrow block (H <= 16, precision fp32 or tf32; a float32
//              model, or float64 on the CPU) runs its mix stage as one op
//              (narrow_mix: on the CPU one pass each way with vectorised
//              GELU and sigmoid; on CUDA one kernel each way, the dropout
//              masks drawn inside). Other blocks: fused on CUDA (float32);
//              on the CPU composed with Philox dropout masks (drop): there the tensors
//              sit in cache and LibTorch's vectorised GELU and sigmoid beat
//              the fused ops' scalar loops
//              (docs/performance.md, "The narrow block's mix stage")
enum class BlockOps { kAuto, kFused, kComposed };

class LruBlockImpl : public torch::nn::Module {
 public:
  LruBlockImpl(int64_t state_dim, int64_t hidden_dim, double drop_rate, LruInit init,
               Precision precision = Precision::kFp32, BlockOps ops = BlockOps::kAuto, bool wide_lru_bf16 = true);
  torch::Tensor forward(const torch::Tensor& x);  // {B, L, H} -> {B, L, H}
  // forward(x) = mix(lru(normalize(x), lru_precision()), x): its three
  // stages, which bench_block_parts times. A fused block whose LRU layer
  // takes bfloat16 projections (bf16 mode, H > 16) runs the layer, its skip
  // term and the GELU with dropout as one op (lru_layer_bf16_gelu_dropout),
  // then mix's GLU stage: the same function (fused_lru_activation).
  torch::Tensor normalize(const torch::Tensor& x);                      // BatchNorm over (batch, time)
  torch::Tensor mix(const torch::Tensor& y, const torch::Tensor& x);    // x + dropout(GLU(dropout(GELU(y))))
  // Whether mix runs as narrow_mix (kAuto, H <= 16, not bf16).
  bool narrow_mix_stage(const torch::Tensor& y) const;
  // The composed blocks' dropout: LibTorch's module, except that kAuto on
  // the CPU in training multiplies by a Philox keep mask (dropout_keep_mask).
  torch::Tensor drop(const torch::Tensor& t);
  Precision lru_precision() const { return wide_lru_bf16 ? precision : Precision::kFp32; }
  // Whether forward runs lru_layer_bf16_gelu_dropout for a normalised input z.
  bool fused_lru_activation(const torch::Tensor& z) const;
  // The fused ops' GLU stage: x + dropout(GLU(g)), g = dropout(GELU(y)).
  torch::Tensor glu(const torch::Tensor& g, const torch::Tensor& x);
  // In training, a block that takes fused_lru_activation also runs its
  // BatchNorm inside that op (lru_block_bf16_front: the normalised input is
  // never written in float32, the residual's gradient is added in the norm's
  // backward pass) and updates the running statistics as BatchNorm1d does.
  // fuse_norm = false keeps the BatchNorm module apart (bench_block_parts
  // compares). The same function and random draws either way.
  bool fused_front(const torch::Tensor& x) const;
  bool fuse_norm = true;

  torch::nn::BatchNorm1d norm{nullptr};
  LruLayer lru{nullptr};
  torch::nn::Linear glu_value{nullptr}, glu_gate{nullptr};
  torch::nn::Dropout dropout{nullptr};
  Precision precision;  // of glu_value and glu_gate (precision.h), and of lru's projections
  BlockOps ops;
  bool wide_lru_bf16;  // false: lru keeps float32 projections in the bf16 mode (LruModelOptions)
};
TORCH_MODULE(LruBlock);

struct LruModelOptions {
  // N of block `b`.
  int64_t state_dim_of(int64_t b) const {
    return block_state_dims.empty() ? state_dim : block_state_dims.at(static_cast<size_t>(b));
  }

  int64_t input_dim = 1;    // channels per time step (ignored with a vocabulary)
  int64_t vocab_size = 0;   // > 0: token inputs through an Embedding
  int64_t num_classes = 10;
  int64_t num_blocks = 1;
  int64_t state_dim = 256;  // N of every block, unless block_state_dims is set
  // N per block (a reduced model); empty = state_dim for all. Size num_blocks.
  std::vector<int64_t> block_state_dims;
  int64_t hidden_dim = 8;   // H
  double drop_rate = 0.0;
  LruInit init;
  // Compute precision of the encoder, GLU and head (precision.h); tf32 also
  // sets LibTorch's process-wide TF32 flag when the model is built. An
  // encoder of at most kFloat32EncoderInputs input channels computes in
  // float32 whatever the precision (LruModelImpl::encode).
  Precision precision = Precision::kFp32;
  // How the blocks run their element-wise work. The same function either
  // way; dropout draws differ.
  BlockOps block_ops = BlockOps::kAuto;
  // With precision bf16: layers wider than 16 channels compute the LRU's B
  // and C projections in bfloat16 (LruLayerImpl::bf16_projections). False
  // keeps them in float32 (TF32 GEMMs on CUDA): the benchmarks compare the two.
  bool wide_lru_bf16 = true;
};

class LruModelImpl : public torch::nn::Module {
 public:
  explicit LruModelImpl(const LruModelOptions& options);
  // x {B, L, input_dim} float (or {B, L} int64 tokens) -> logits {B, num_classes}
  torch::Tensor forward(const torch::Tensor& x);
  // Its first stage: x -> {B, L, H} float32. A Linear encoder with at most
  // kFloat32EncoderInputs inputs computes in float32 (TF32 where that flag is
  // on) in every precision: with
  // K = 1 or 3 its GEMM is a pass over its output, and bf16 wrote that output
  // in bfloat16, added the bias in a second pass and cast it to float32 in a
  // third (H200, sCIFAR: 83 + 86 us per step besides the GEMM).
  static constexpr int64_t kFloat32EncoderInputs = 16;
  torch::Tensor encode(const torch::Tensor& x);

  std::vector<LruLayer> lru_layers() const;
  std::vector<int64_t> state_dims() const;
  const LruModelOptions& options() const { return options_; }
  // Where the parameters are.
  torch::Device device() const { return head->weight.device(); }

  // Parameters of the SSM group (nu_log, theta_log, gamma_log, B_re, B_im):
  // lr * ssm_lr_factor, no weight decay. Everything else is `other_parameters`.
  std::vector<torch::Tensor> ssm_parameters() const;
  std::vector<torch::Tensor> other_parameters() const;

 private:
  LruModelOptions options_;
  torch::nn::Linear encoder{nullptr};
  torch::nn::Embedding embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(LruModel);

// True when a dotted parameter or buffer name ends in ".leaf"
// ("blocks.0.norm.running_var" has the leaf "running_var").
bool has_leaf(const std::string& name, const std::string& leaf);

// True for the parameter names of the SSM group.
bool is_ssm_parameter(const std::string& name);

}  // namespace compressm::nn
