#include "nn/lru_model.h"

#include <torch/nn/functional/activation.h>

#include <stdexcept>
#include <string>

#include "nn/fused_ops.h"
#include "nn/lru_layer_function.h"
#include "nn/lru_optimizer.h"

namespace compressm::nn {

LruBlockImpl::LruBlockImpl(int64_t n, int64_t h, double drop_rate, LruInit init, Precision precision, BlockOps ops,
                           bool wide_lru_bf16)
    : precision(precision), ops(ops), wide_lru_bf16(wide_lru_bf16) {
  norm = register_module("norm", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(h).affine(false)));
  lru = register_module("lru", LruLayer(n, h, init));
  glu_value = register_module("glu_value", torch::nn::Linear(h, h));
  glu_gate = register_module("glu_gate", torch::nn::Linear(h, h));
  dropout = register_module("dropout", torch::nn::Dropout(drop_rate));
}

namespace {
bool runs_fused(const torch::Tensor& t, BlockOps ops) {
  return fused_ops_support(t) && (ops == BlockOps::kFused || (ops == BlockOps::kAuto && t.is_cuda()));
}
}  // namespace

bool LruBlockImpl::fused_lru_activation(const torch::Tensor& z) const {
  return runs_fused(z, ops) && z.scalar_type() == torch::kFloat &&
         LruLayerImpl::bf16_projections(lru_precision(), lru->hidden_dim());
}

bool LruBlockImpl::fused_front(const torch::Tensor& x) const {
  return fuse_norm && is_training() && norm->options.track_running_stats() && fused_lru_activation(x) &&
         x.dim() == 3 && x.size(0) * x.size(1) > 1;
}

torch::Tensor LruBlockImpl::forward(const torch::Tensor& x) {
  if (fused_front(x)) {
    const double p = dropout->options.p();
    // BatchNorm1d's running statistics, updated inside the op (the kernel
    // that merges the batch moments): the unbiased variance, momentum or
    // (momentum unset) the cumulative average.
    {
      torch::NoGradGuard no_grad;
      norm->num_batches_tracked.add_(1);
    }
    // Momentum unset reads the count on the host, as BatchNorm1d does (a
    // device sync; such a block cannot be captured in a CUDA graph).
    const double momentum = norm->options.momentum().has_value() ? *norm->options.momentum()
                                                                 : 1.0 / norm->num_batches_tracked.item<double>();
    const BatchNormRunning running{norm->running_mean, norm->running_var, momentum};
    const LruBlockFront f = lru_block_bf16_front_dropout(lru->inputs(x), p, norm->options.eps(), running);
    return glu(f.g, f.x);
  }
  const torch::Tensor z = normalize(x);
  if (!fused_lru_activation(z)) return mix(lru(z, lru_precision()), x);
  const double p = is_training() ? dropout->options.p() : 0.0;
  return glu(lru_layer_bf16_gelu_dropout(lru->inputs(z), dropout_keep_mask(z.sizes(), p, z.device()), p), x);
}

torch::Tensor LruBlockImpl::normalize(const torch::Tensor& x) {
  // Statistics over (batch, time) per channel: BatchNorm1d on the {B*L, H} view,
  // which keeps everything contiguous (the {B, H, L} transpose was 3x slower
  // and sent the next matmul down the batched-GEMM path).
  const auto shape = x.sizes();
  return norm(x.reshape({shape[0] * shape[1], shape[2]})).view(shape);
}

bool LruBlockImpl::narrow_mix_stage(const torch::Tensor& y) const {
  return ops == BlockOps::kAuto && precision != Precision::kBf16 && narrow_mix_support(y) &&
         glu_value->weight.scalar_type() == y.scalar_type();
}

torch::Tensor LruBlockImpl::mix(const torch::Tensor& y, const torch::Tensor& x) {
  if (narrow_mix_stage(y)) {
    const double p = is_training() ? dropout->options.p() : 0.0;
    return narrow_mix_dropout(y, x, torch::cat({glu_value->weight, glu_gate->weight}),
                              torch::cat({glu_value->bias, glu_gate->bias}), p);
  }
  if (!runs_fused(y, ops)) {
    torch::Tensor z = drop(torch::gelu(y));
    z = drop(dense_libtorch(glu_value, z, precision) * torch::sigmoid(dense_libtorch(glu_gate, z, precision)));
    return x + z;
  }
  const double p = is_training() ? dropout->options.p() : 0.0;
  const bool bf16 = precision == Precision::kBf16 && y.scalar_type() == torch::kFloat;
  return glu(gelu_dropout(y, dropout_keep_mask(y.sizes(), p, y.device()), p, bf16 ? torch::kBFloat16 : y.scalar_type()),
             x);
}

torch::Tensor LruBlockImpl::drop(const torch::Tensor& t) {
  const double p = dropout->options.p();
  if (ops != BlockOps::kAuto || !t.device().is_cpu() || !is_training() || p == 0.0) return dropout(t);
  // LibTorch 1.13 draws a CPU dropout mask element by element from mt19937
  // (~8 ns per element); Philox draws it vectorised (dropout_keep_mask).
  const torch::Tensor keep = dropout_keep_mask(t.sizes(), p, t.device());
  return t * keep.to(t.scalar_type()).mul_(1.0 / (1.0 - p));
}

torch::Tensor LruBlockImpl::glu(const torch::Tensor& g, const torch::Tensor& x) {
  const double p = is_training() ? dropout->options.p() : 0.0;
  // The pair's bias is added inside glu_residual, in x's dtype: on the
  // GPU the GEMM's bias add was a pass of its own over the {B, L, 2H}
  // output (H200: 165 us per sCIFAR block), and in bf16 rounded to bfloat16.
  torch::Tensor vg = dense_pair(glu_value, glu_gate, g, precision);
  if (precision != Precision::kBf16 || x.scalar_type() != torch::kFloat) vg = vg.to(x.scalar_type());
  const torch::Tensor bias = torch::cat({glu_value->bias, glu_gate->bias}).to(x.scalar_type());
  return glu_residual_dropout(vg, x, p, bias);
}

LruModelImpl::LruModelImpl(const LruModelOptions& o) : options_(o) {
  if (!o.block_state_dims.empty() && static_cast<int64_t>(o.block_state_dims.size()) != o.num_blocks)
    throw std::invalid_argument("LruModelOptions: block_state_dims has " + std::to_string(o.block_state_dims.size()) +
                                " entries for " + std::to_string(o.num_blocks) + " blocks");
  if (o.vocab_size > 0)
    embedding = register_module("embedding", torch::nn::Embedding(o.vocab_size, o.hidden_dim));
  else
    encoder = register_module("encoder", torch::nn::Linear(o.input_dim, o.hidden_dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t b = 0; b < o.num_blocks; ++b)
    blocks->push_back(
        LruBlock(o.state_dim_of(b), o.hidden_dim, o.drop_rate, o.init, o.precision, o.block_ops, o.wide_lru_bf16));
  head = register_module("head", torch::nn::Linear(o.hidden_dim, o.num_classes));
  // bf16 keeps float32 GEMMs where the LRU projections stay float32: TF32 for those.
  if (o.precision == Precision::kTf32 || o.precision == Precision::kBf16) enable_tf32(true);
  if (o.precision == Precision::kBf16) require_float32_bf16_reductions();
}

torch::Tensor LruModelImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = encode(x);
  for (const auto& block : *blocks) h = block->as<LruBlock>()->forward(h);
  return dense(head, mean_over_time(h), options_.precision);
}

torch::Tensor LruModelImpl::encode(const torch::Tensor& x) {
  if (options_.vocab_size > 0) return embedding(x);
  return dense(encoder, x, options_.input_dim <= kFloat32EncoderInputs ? Precision::kFp32 : options_.precision);
}

std::vector<LruLayer> LruModelImpl::lru_layers() const {
  std::vector<LruLayer> layers;
  for (const auto& block : *blocks) layers.push_back(block->as<LruBlock>()->lru);
  return layers;
}

std::vector<int64_t> LruModelImpl::state_dims() const {
  std::vector<int64_t> dims;
  for (const auto& layer : lru_layers()) dims.push_back(layer->state_dim());
  return dims;
}

bool has_leaf(const std::string& name, const std::string& leaf) {
  return name.size() > leaf.size() && name[name.size() - leaf.size() - 1] == '.' &&
         name.compare(name.size() - leaf.size(), leaf.size(), leaf) == 0;
}

bool is_ssm_parameter(const std::string& name) {
  for (const char* leaf : {"nu_log", "theta_log", "gamma_log", "B_re", "B_im"})
    if (has_leaf(name, leaf)) return true;
  return false;
}

std::vector<torch::Tensor> LruModelImpl::ssm_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& item : named_parameters())
    if (is_ssm_parameter(item.key())) out.push_back(item.value());
  return out;
}

std::vector<torch::Tensor> LruModelImpl::other_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& item : named_parameters())
    if (!is_ssm_parameter(item.key())) out.push_back(item.value());
  return out;
}

std::unique_ptr<torch::optim::AdamW> make_lru_adamw(const LruModel& model, double ssm_lr, double lr,
                                                    double weight_decay) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(model->ssm_parameters(),
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(ssm_lr).weight_decay(0.0)));
  groups.emplace_back(model->other_parameters(), std::make_unique<torch::optim::AdamWOptions>(
                                                     torch::optim::AdamWOptions(lr).weight_decay(weight_decay)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr));
}

}  // namespace compressm::nn
