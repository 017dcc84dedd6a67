// CUDA kernels of the LRU block's fused element-wise ops and of the graphed
// step's AdamW update (the per-element math is kernels/fused_ops.h,
// shared with the CPU loops that are their parity oracle). Float32 compute;
// the GEMM side (gelu_dropout's output, glu_residual's [v | g] input) is
// float32 or bfloat16. Plain device pointers and a stream, no tensors; every
// launcher throws std::runtime_error when the launch fails.
#pragma once

#include <cstdint>

#include "kernels/fused_ops.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/lru_cuda.h"

namespace compressm::kernels::cuda {

// Storage of the GEMM-side tensor.
enum class Storage { kFloat32, kBFloat16 };

// The wide element-wise kernels below (glu_residual, lru_skip,
// lru_skip_gelu, the BatchNorm kernels) take four consecutive elements of a
// row per thread, as 16-, 8- and 4-byte accesses, where H is a multiple of
// 4 and every pointer is aligned for that; else one. set_vector_width(1)
// makes them take one everywhere (process-wide; benchmarks compare the two
// paths), 4 restores the default; anything else throws
// std::invalid_argument. The results are the same but for the order of
// glu_residual's bias sums. A CUDA graph keeps the kernels of the width set
// when it was captured.
void set_vector_width(int width);

// z = dropout(GELU(y)), z stored as `z_type`; keep may be null (no dropout).
void gelu_dropout_forward(const float* y, void* z, Storage z_type, int64_t n, const uint8_t* keep, float scale,
                          Stream stream);
// grad_y = grad_z * d * GELU'(y), grad_z stored as `grad_type`.
void gelu_dropout_backward(const float* y, const void* grad_z, Storage grad_type, float* grad_y, int64_t n,
                           const uint8_t* keep, float scale, Stream stream);
// The dropout of glu_residual and lru_skip_gelu: element i's factor is
// `scale` (1 / (1 - p)) where kept, else 0, kept where keep[i] != 0 (keep
// null and draw false: no dropout), or, with `draw`, where
// philox::generator_keeps(seed, offset, i, threshold) under `philox`: the
// bits draw_keep_mask would have written, drawn inside the kernel (one
// Philox call per four elements where the kernel runs four wide), with no
// mask tensor written or read (two {50, 1024, 512} masks per sCIFAR block
// and step: each written once and read twice).
struct Dropout {
  const uint8_t* keep = nullptr;
  float scale = 1.f;
  bool draw = false;
  PhiloxSeed philox{};
  uint64_t threshold = 0;
};
// A keep mask's dropout (keep null: none).
inline Dropout mask_dropout(const uint8_t* keep, float scale) {
  Dropout d;
  d.keep = keep;
  d.scale = scale;
  return d;
}
// Drawn in the kernel at keep probability 1 - p (threshold, scale).
inline Dropout drawn_dropout(const PhiloxSeed& philox, uint64_t threshold, float scale) {
  Dropout d;
  d.scale = scale;
  d.draw = true;
  d.philox = philox;
  d.threshold = threshold;
  return d;
}

// out {rows, H} = x + dropout(v .* sigmoid(g)), [v | g] = vg {rows, 2H}
// stored as `vg_type` plus bias {2H} (float32; null: none).
void glu_residual_forward(const void* vg, Storage vg_type, const float* x, float* out, int64_t rows, int64_t hidden,
                          const Dropout& dropout, Stream stream, const float* bias = nullptr);
inline void glu_residual_forward(const void* vg, Storage vg_type, const float* x, float* out, int64_t rows,
                                 int64_t hidden, const uint8_t* keep, float scale, Stream stream,
                                 const float* bias = nullptr) {
  glu_residual_forward(vg, vg_type, x, out, rows, hidden, mask_dropout(keep, scale), stream, bias);
}
// grad_vg {rows, 2H} (stored as `vg_type`) from grad_out {rows, H}; with
// grad_bias (bias given), also the bias's gradient {2H}: the column sums of
// grad_vg as stored, summed by each thread over its elements (all in one
// column) into `workspace` (glu_residual_workspace floats), and the
// threads' sums by column_sums (deterministic, not in row order). Where a
// column-sums kernel read the {rows, 2H} result once more (105 MB per
// sCIFAR block in bfloat16), it reads the threads' sums (8 MB).
int64_t glu_residual_workspace(int64_t rows, int64_t hidden);
void glu_residual_backward(const void* vg, Storage vg_type, const float* grad_out, void* grad_vg, int64_t rows,
                           int64_t hidden, const Dropout& dropout, Stream stream, const float* bias = nullptr,
                           float* grad_bias = nullptr, float* workspace = nullptr);
inline void glu_residual_backward(const void* vg, Storage vg_type, const float* grad_out, void* grad_vg, int64_t rows,
                                  int64_t hidden, const uint8_t* keep, float scale, Stream stream,
                                  const float* bias = nullptr, float* grad_bias = nullptr,
                                  float* workspace = nullptr) {
  glu_residual_backward(vg, vg_type, grad_out, grad_vg, rows, hidden, mask_dropout(keep, scale), stream, bias,
                        grad_bias, workspace);
}

// lru_skip (kernels::elementwise): out {rows, H} = cx + D .* u, cx stored as
// `cx_type`, or the sum of `parts` such arrays one after another (the fused
// narrow layer's state blocks). Backward: grad_u = grad_u_gemm + D .* grad_y
// and grad_D {H}, by one kernel (a thread block per part of rows and up to
// 256 column groups) writing the parts' sums into `workspace`
// (lru_skip_workspace floats, room for two sums' parts) and one sum_rows.
void lru_skip_forward(const void* cx, Storage cx_type, const float* D, const float* u, float* out, int64_t rows,
                      int64_t hidden, Stream stream, int64_t parts = 1);
int64_t lru_skip_workspace(int64_t rows, int64_t hidden);
void lru_skip_backward(const float* grad_y, const float* u, const void* grad_u_gemm, Storage grad_type,
                       const float* D, float* grad_u, float* grad_D, float* workspace, int64_t rows, int64_t hidden,
                       Stream stream);

// lru_skip_gelu (kernels::elementwise): g = dropout(GELU(cx + D .* u)), cx
// and g stored as `type`, u stored or normalised on the fly (NormInput).
// Backward: grad_cx (stored as `type`), grad_skip (grad_out may be null) and
// the column sums `sums` ({H}, or {2H} where u is normalised) as the CPU loop
// writes them, by one column-parts kernel and one sum_rows (the workspace of
// lru_skip_workspace).
// (The dropout as glu_residual's.)
void lru_skip_gelu_forward(const void* cx, Storage type, const float* D, elementwise::NormInput u, void* g,
                           int64_t rows, int64_t hidden, const Dropout& dropout, Stream stream);
inline void lru_skip_gelu_forward(const void* cx, Storage type, const float* D, elementwise::NormInput u, void* g,
                                  int64_t rows, int64_t hidden, const uint8_t* keep, float scale, Stream stream) {
  lru_skip_gelu_forward(cx, type, D, u, g, rows, hidden, mask_dropout(keep, scale), stream);
}
void lru_skip_gelu_backward(const void* grad_g, const void* cx, Storage type, const float* D,
                            elementwise::NormInput u, const float* grad_out, void* grad_cx, float* grad_skip,
                            float* sums, float* workspace, int64_t rows, int64_t hidden, const Dropout& dropout,
                            Stream stream);
inline void lru_skip_gelu_backward(const void* grad_g, const void* cx, Storage type, const float* D,
                                   elementwise::NormInput u, const float* grad_out, void* grad_cx, float* grad_skip,
                                   float* sums, float* workspace, int64_t rows, int64_t hidden, const uint8_t* keep,
                                   float scale, Stream stream) {
  lru_skip_gelu_backward(grad_g, cx, type, D, u, grad_out, grad_cx, grad_skip, sums, workspace, rows, hidden,
                         mask_dropout(keep, scale), stream);
}

// batch_norm (kernels::elementwise) of x {rows, H}: column_moments (a column
// parts kernel and a merge kernel) writes mean, var, invstd {H} and updates
// the running statistics in the merge kernel where `running` has pointers;
// batch_norm_cast writes out = batch_norm(x) stored as `out_type`;
// batch_norm_backward completes dL/dx in place over grad_x (which holds
// lru_skip_gelu_backward's grad_skip) from grad_u_gemm (stored as `type`), D
// and that op's skip_sums {2H}, by a column-parts kernel, one sum_rows, a
// per-column kernel and an element-wise kernel. Both take
// batch_norm_workspace floats.
int64_t batch_norm_workspace(int64_t rows, int64_t hidden);
void column_moments(const float* x, int64_t rows, int64_t hidden, float eps, float* mean, float* var,
                    float* invstd, float* workspace, Stream stream, const elementwise::RunningStats& running = {});
void batch_norm_cast(const float* x, const float* mean, const float* invstd, void* out, Storage out_type,
                     int64_t rows, int64_t hidden, Stream stream);
void batch_norm_backward(float* grad_x, const void* grad_u_gemm, Storage type, elementwise::NormInput u,
                         const float* D, const float* skip_sums, float* workspace, int64_t rows, int64_t hidden,
                         Stream stream);

// The wide bf16 layer's operands and their gradients back
// (kernels::elementwise::lru_bf16_pack, lru_bf16_unpack_gradients; N states
// padded to `padded` with zero states): w_in, w_out and their gradients
// bfloat16, one kernel each. padded < state throws std::invalid_argument.
void lru_bf16_pack(const float* lambda_re, const float* lambda_im, const float* B_re, const float* B_im,
                   const float* C_re, const float* C_im, int64_t state, int64_t padded, int64_t hidden, float* lambda,
                   void* w_in, void* w_out, Stream stream);
void lru_bf16_unpack_gradients(const void* grad_w_in, const void* grad_w_out, const float* lambda_rows, int64_t rows,
                               int64_t state, int64_t padded, int64_t hidden, float* grad_lambda_re,
                               float* grad_lambda_im, float* grad_B_re, float* grad_B_im, float* grad_C_re,
                               float* grad_C_im, Stream stream);

// The LRU parameterisation (kernels::elementwise::lru_parameterize_*), float32:
// forward one thread per element of B; backward one thread block per state
// (dL/dgamma_log sums over H).
void lru_parameterize_forward(const elementwise::LruParameters<float>& p, int64_t state, int64_t hidden,
                              float* lambda_re, float* lambda_im, float* Bt_re, float* Bt_im, Stream stream);
void lru_parameterize_backward(const elementwise::LruParameters<float>& p, int64_t state, int64_t hidden,
                               const float* grad_lambda_re, const float* grad_lambda_im, const float* grad_Bt_re,
                               const float* grad_Bt_im, const elementwise::LruParameterGradients<float>& grads,
                               Stream stream);

// classification_loss: mean cross-entropy of logits {B, C} (int64 labels)
// into loss (one float), row_lse {B} for the backward pass, and stats
// {mean loss, correct count} as two doubles (one transfer for the host). One
// thread block.
void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t batch, int64_t classes,
                           float* row_lse, float* loss, double* stats, Stream stream);
// grad_logits {B, C} from the loss's gradient (one float in device memory).
void cross_entropy_backward(const float* logits, const int64_t* labels, const float* row_lse, int64_t batch,
                            int64_t classes, const float* grad_loss, float* grad_logits, Stream stream);

// out[j] = sum over r of in[r * cols + j], for up to kSumRowsJobs arrays in
// one launch (the per-row gradient parts of the fused LRU layer, the column
// parts of the kernels below). A block per tile of reduce_tile(rows, cols)
// columns: its 256 / tile row groups add every groups-th row of their
// column, then the groups' sums are added in group order. The order depends
// on (rows, cols) only, so the result is deterministic (one thread per
// column adding the rows in a row took 19 us for 256 rows of 1024 columns,
// H200).
// The tile: up to 32 columns (8 or more row groups), or where there are at
// most 32 rows up to 256 columns (one group adds the few rows in order:
// the fused layer's {4, 313600} parts at sMNIST's sizes would leave most
// groups idle). The BatchNorm moments' merge takes its tiles the same way
// (its parts as rows).
COMPRESSM_HD int reduce_tile(int64_t rows, int64_t cols) {
  const int64_t widest = rows <= 32 ? 256 : 32;
  return static_cast<int>(cols < widest ? cols : widest);
}
struct SumRowsJob {
  const float* in;
  float* out;
  int64_t rows, cols;
};
constexpr int kSumRowsJobs = 8;
void sum_rows(const SumRowsJob* jobs, int count, Stream stream);

// Column sums out[j] = sum over r of a[r, j] (times b[r, j] where b is not
// null) for a {rows, cols} stored as `a_type` and b float32: the rows in
// column_sum_parts(rows, cols) parts, each part by one thread block whose
// row groups add strided shares and then the shares in a fixed order, into
// `parts` {column_sum_parts, cols}; then sum_rows adds the parts
// (deterministic). LibTorch's sums over the rows of narrow arrays (a bias
// gradient, dL/dD) ran a few thread blocks (9-12 us each at sMNIST's
// {39200, 8-16}, H200). column_sums does both launches; column_sum_parts
// only the first (the caller may put the parts into a sum_rows launch of
// its own).
int64_t column_sum_parts(int64_t rows, int64_t cols);
void column_sum_parts(const void* a, Storage a_type, const float* b, float* parts, int64_t rows, int64_t cols,
                      Stream stream);
void column_sums(const void* a, Storage a_type, const float* b, float* out, float* parts, int64_t rows, int64_t cols,
                 Stream stream);

// A dense layer with few inputs (the model's encoder of 1-3 input channels,
// sMNIST's head of H = 8), float32: out {rows, cols} = x W^T + bias for x
// {rows, K}, weight {cols, K}, bias {cols} (null: none), 1 <= K <=
// kNarrowLinearInputs. One kernel: a thread keeps its W (4 or 1) columns'
// weights in registers and strides over rows, one W-wide store per row;
// LibTorch ran a GEMM of inner size K then a bias add over the output
// (sMNIST's {39200, 1} x {1, 8}: 13.8 + 5.2 us of a 0.54 ms step, H200, run
// 6; sCIFAR's {51200, 3} x {3, 512} wrote and reread 105 MB).
// Backward: grad_weight {cols, K} = grad^T x and grad_bias {cols} = the
// column sums of grad {rows, cols}, by one column-parts kernel (each part's
// K + 1 sums of each column) and one sum_rows with two jobs, into
// `workspace` (narrow_linear_workspace floats); grad_bias is column_sums(grad)
// bit for bit. (LibTorch: a split-K GEMM for grad_weight and its
// reduction, 16.8 + 11.4 us at sMNIST's sizes, then the bias sums.) Both
// throw std::invalid_argument for K outside [1, kNarrowLinearInputs].
constexpr int kNarrowLinearInputs = 16;
void narrow_linear_forward(const float* x, const float* weight, const float* bias, float* out, int64_t rows,
                           int64_t inputs, int64_t cols, Stream stream);
int64_t narrow_linear_workspace(int64_t rows, int64_t inputs, int64_t cols);
void narrow_linear_backward(const float* grad, const float* x, float* grad_weight, float* grad_bias,
                            float* workspace, int64_t rows, int64_t inputs, int64_t cols, Stream stream);

// out[b, j] = the mean over t of in[b, t, j] for in {batch, length, cols}
// float32 (the model's pooling over time): column_sum_parts' kernel with
// one part per sequence, divided by its length (deterministic, not in row
// order). LibTorch's mean ran 4 thread blocks at
// sMNIST's {50, 784, 8}.
void mean_over_time(const float* in, float* out, int64_t batch, int64_t length, int64_t cols, Stream stream);
// Its gradient: out[b, t, j] = grad[b, j] / length for out {batch, length,
// cols}, grad {batch, cols} (float32), one pass of stores. LibTorch's mean
// backward divided an expanded (stride 0) view: 75 us for sCIFAR's
// {50, 1024, 512} on the H200 (run 6), ~30 us of stores.
void mean_over_time_backward(const float* grad, float* out, int64_t batch, int64_t length, int64_t cols,
                             Stream stream);

// One AdamW step of a bucket of parameters whose values and moments are one
// flat buffer each (p, m, v) while their gradients stay where autograd put
// them: tensor k is elements [starts[k], starts[k + 1]) of the flat buffers,
// its gradient grads[k] (null: no gradient this step; that tensor is
// left as it is, as torch::optim::AdamW skips it).
// `scalars` = {1 - lr wd, lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)} in
// device memory (set before each replay of a CUDA graph). One launch per 64
// tensors.
struct AdamwBucket {
  float *p, *m, *v;
  const float* const* grads;  // host array of `count` device pointers
  const int64_t* starts;      // host array of count + 1 offsets
  int64_t count;
};
void adamw_step(const AdamwBucket& bucket, const float* scalars, float beta1, float beta2, float eps, Stream stream);

}  // namespace compressm::kernels::cuda
