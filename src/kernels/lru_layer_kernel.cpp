// Fused LRU layer on the CPU. Inside the kernel everything lives in a padded
// structure-of-arrays layout: a state vector is one row [re(0..n) | im(0..n)]
// of s = 2n entries, n = N rounded up to the vector width, and H is rounded up
// to the register tile. Padded states have lambda = Bt = C = 0 and padded
// channels have u = dL/dy = 0, so padding never changes a result. With this
// layout the two projections are real products with K = H on rows of length
// s (small_gemm.h), and the scan is vectorised across states.
//
// Work per batch row and time step (N = 256, H = 8): the projections are
// 2 x 2NH multiply-adds forward and 5 x 2NH backward (recomputed input
// projection, dL/dx, dL/dC, dL/dBt, dL/du), against 4N for each scan: the
// kernel is compute-bound on cache-resident chunks, not memory-bound.
#include "kernels/lru_layer_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "kernels/lru_scan_chunk.h"
#include "kernels/small_gemm.h"

namespace compressm::kernels {
namespace {

using small_gemm::kTile;

// Time steps per chunk: the chunk's states (kChunk x s, 32 KiB for N = 256 in
// float32) stay in L1/L2 between the projections and the scans. Measured:
// 12 to 20 steps within 3% of each other, 32 steps 5% slower (B=50, L=784,
// N=256, H=8, one thread).
constexpr int64_t kChunk = 16;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int64_t chunk_count(int64_t length) { return (length + kChunk - 1) / kChunk; }

// Zero-initialised, 64-byte aligned so every padded row starts a cache line.
template <class T>
class Buffer {
 public:
  explicit Buffer(int64_t size)
      : size_(size),
        data_(static_cast<T*>(std::aligned_alloc(64, round_up(std::max<int64_t>(size, 1) * sizeof(T), 64)))) {
    if (!data_) throw std::bad_alloc();
    std::fill(data_, data_ + size_, T(0));
  }
  ~Buffer() { std::free(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }
  void zero() { std::fill(data_, data_ + size_, T(0)); }

 private:
  int64_t size_;
  T* data_;
};

template <class T>
struct Padded {
  explicit Padded(const LruWeights<T>& w, LruShape shape)
      : n(round_up(shape.state, small_gemm::Vec<T>::width)), s(2 * n), h(round_up(shape.hidden, kTile)),
        w_in(h * s), w_out(h * s), lambda(s), d(h) {
    const int64_t N = shape.state, H = shape.hidden;
    for (int64_t q = 0; q < H; ++q) {
      for (int64_t i = 0; i < N; ++i) {
        w_in.data()[q * s + i] = w.B_re[i * H + q];  // row q: Bt[:, q]
        w_in.data()[q * s + n + i] = w.B_im[i * H + q];
        w_out.data()[q * s + i] = w.C_re[q * N + i];  // Re(C x) = C_re x_re - C_im x_im
        w_out.data()[q * s + n + i] = -w.C_im[q * N + i];
      }
      d.data()[q] = w.D[q];
    }
    std::copy(w.lambda_re, w.lambda_re + N, lambda.data());
    std::copy(w.lambda_im, w.lambda_im + N, lambda.data() + n);
  }
  int64_t n, s, h;
  Buffer<T> w_in;    // {h, s}
  Buffer<T> w_out;   // {h, s}
  Buffer<T> lambda;  // {s}
  Buffer<T> d;       // {h}
};

// Scratch for one chunk, one per task.
template <class T>
struct Scratch {
  explicit Scratch(const Padded<T>& p)
      : u(kChunk * p.h), g_y(kChunk * p.h), small(kChunk * p.h), x(kChunk * p.s), adjoint(kChunk * p.s),
        state(p.s), carry(p.s) {}
  Buffer<T> u, g_y, small;  // {kChunk, h}: inputs, dL/dy, a projection's output
  Buffer<T> x, adjoint;     // {kChunk, s}: states, then dL/dx
  Buffer<T> state, carry;   // {s}: the state before a chunk (without checkpoints), adjoint carry
};

// Partial gradients of one part of the batch, in the padded layout.
template <class T>
struct Partial {
  explicit Partial(const Padded<T>& p) : w_in(p.h * p.s), w_out(p.h * p.s), lambda(p.s), d(p.h) {}
  Buffer<T> w_in, w_out, lambda, d;
};

// rows [t0, t0 + len) of a {L, H} array into a zeroed {kChunk, h} block.
template <class T>
void load_rows(const T* src, int64_t H, int64_t len, int64_t h, Buffer<T>& dst) {
  dst.zero();
  for (int64_t t = 0; t < len; ++t) std::copy(src + t * H, src + (t + 1) * H, dst.data() + t * h);
}

// The input projection then the scan: rows [0, len) of scratch.x become x_t,
// continuing from the state `start`.
template <class T>
void states_of_chunk(const Padded<T>& p, const T* start, int64_t len, Scratch<T>& w) {
  small_gemm::expand(w.u.data(), p.h, p.w_in.data(), w.x.data(), round_up(len, kTile), p.h, p.s);
  scan_chunk_forward(p.lambda.data(), start, w.x.data(), len, p.n);
}

// checkpoints[c] {s} = the state before chunk c (zero for c = 0).
template <class T>
void forward_row(const Padded<T>& p, const T* u, T* y, T* checkpoints, LruShape shape, Scratch<T>& w) {
  const int64_t H = shape.hidden, chunks = chunk_count(shape.length);
  w.state.zero();
  if (checkpoints) std::fill(checkpoints, checkpoints + p.s, T(0));
  const T* start = checkpoints ? checkpoints : w.state.data();
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t t0 = c * kChunk, len = std::min(kChunk, shape.length - t0);
    load_rows(u + t0 * H, H, len, p.h, w.u);
    states_of_chunk(p, start, len, w);
    if (c + 1 < chunks) {  // the last state is the next chunk's start
      T* next = checkpoints ? checkpoints + (c + 1) * p.s : w.state.data();
      std::copy(w.x.data() + (len - 1) * p.s, w.x.data() + len * p.s, next);
      start = next;
    }
    small_gemm::contract(w.x.data(), p.w_out.data(), w.small.data(), p.h, round_up(len, kTile), p.h, p.s);
    for (int64_t t = 0; t < len; ++t)
      for (int64_t q = 0; q < H; ++q)
        y[(t0 + t) * H + q] = w.small.data()[t * p.h + q] + p.d.data()[q] * u[(t0 + t) * H + q];
  }
}

// One chunk of the backward pass, after its states are in scratch.x:
//   a_t = dL/dx_t (direct) = w_out^T dL/dy_t;  dL/dw_out += dL/dy_t x_t^T
//   G_t = a_t + conj(lambda) G_{t+1} (the adjoint scan, dL/dlambda inside)
//   dL/dw_in += u_t G_t^T;  dL/du_t = w_in G_t + D dL/dy_t
template <class T>
void backward_chunk(const Padded<T>& p, const T* start, int64_t len, Scratch<T>& w, Partial<T>& g) {
  const int64_t rows = round_up(len, kTile);
  small_gemm::expand(w.g_y.data(), p.h, p.w_out.data(), w.adjoint.data(), rows, p.h, p.s);
  small_gemm::accumulate_outer(w.g_y.data(), p.h, w.x.data(), g.w_out.data(), rows, p.h, p.s);
  scan_chunk_adjoint(p.lambda.data(), w.carry.data(), w.adjoint.data(), w.x.data(), start,
                     g.lambda.data(), len, p.n);
  small_gemm::accumulate_outer(w.u.data(), p.h, w.adjoint.data(), g.w_in.data(), rows, p.h, p.s);
  small_gemm::contract(w.adjoint.data(), p.w_in.data(), w.small.data(), p.h, rows, p.h, p.s);
}

template <class T>
void backward_row(const Padded<T>& p, const T* u, const T* g_y, const T* checkpoints, T* g_u, LruShape shape,
                  Scratch<T>& w, Partial<T>& g) {
  const int64_t H = shape.hidden;
  w.carry.zero();  // G_L = 0
  for (int64_t c = chunk_count(shape.length) - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk, len = std::min(kChunk, shape.length - t0);
    const T* start = checkpoints + c * p.s;
    load_rows(u + t0 * H, H, len, p.h, w.u);
    load_rows(g_y + t0 * H, H, len, p.h, w.g_y);
    states_of_chunk(p, start, len, w);
    backward_chunk(p, start, len, w, g);
    for (int64_t t = 0; t < len; ++t) {
      for (int64_t q = 0; q < H; ++q) {
        const int64_t i = (t0 + t) * H + q;
        g_u[i] = w.small.data()[t * p.h + q] + p.d.data()[q] * g_y[i];
        g.d.data()[q] += g_y[i] * u[i];
      }
    }
  }
}

// First batch row of part `part` of `parts`.
int64_t first_row(int64_t part, int64_t parts, int64_t batch) { return part * batch / parts; }

// A fixed number of parts, whatever the thread count, so that the summed
// gradients do not depend on it (up to kParts threads share the work).
constexpr int64_t kParts = 16;
int64_t part_count(int64_t batch) { return std::min(batch, kParts); }

// Sums the partials in part order and maps them back from the padded layout.
template <class T>
void write_gradients(const Padded<T>& p, const std::vector<std::unique_ptr<Partial<T>>>& parts, const LruGradients<T>& grad,
                     LruShape shape) {
  const int64_t N = shape.state, H = shape.hidden;
  Partial<T> total(p);
  for (const auto& part_ptr : parts) {
    const Partial<T>& part = *part_ptr;
    const auto add = [](const Buffer<T>& from, Buffer<T>& to, int64_t size) {
      for (int64_t i = 0; i < size; ++i) to.data()[i] += from.data()[i];
    };
    add(part.w_in, total.w_in, p.h * p.s);
    add(part.w_out, total.w_out, p.h * p.s);
    add(part.lambda, total.lambda, p.s);
    add(part.d, total.d, p.h);
  }
  for (int64_t q = 0; q < H; ++q) {
    for (int64_t i = 0; i < N; ++i) {
      grad.B_re[i * H + q] = total.w_in.data()[q * p.s + i];
      grad.B_im[i * H + q] = total.w_in.data()[q * p.s + p.n + i];
      grad.C_re[q * N + i] = total.w_out.data()[q * p.s + i];
      grad.C_im[q * N + i] = -total.w_out.data()[q * p.s + p.n + i];
    }
    grad.D[q] = total.d.data()[q];
  }
  std::copy(total.lambda.data(), total.lambda.data() + N, grad.lambda_re);
  std::copy(total.lambda.data() + p.n, total.lambda.data() + p.n + N, grad.lambda_im);
}

}  // namespace

int64_t lru_checkpoint_size(LruShape shape) {
  // Padded with float32's vector width (16), at least float64's padding (8).
  return shape.batch * chunk_count(shape.length) * 2 * round_up(shape.state, small_gemm::Vec<float>::width);
}

template <class T>
void lru_layer_forward(const LruWeights<T>& w, const T* u, T* y, T* checkpoints, LruShape shape) {
  const Padded<T> p(w, shape);
  const int64_t LH = shape.length * shape.hidden, chunks = chunk_count(shape.length);
  const int64_t parts = part_count(shape.batch);
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      Scratch<T> scratch(p);
      for (int64_t b = first_row(part, parts, shape.batch); b < first_row(part + 1, parts, shape.batch); ++b)
        forward_row(p, u + b * LH, y + b * LH, checkpoints ? checkpoints + b * chunks * p.s : nullptr, shape,
                    scratch);
    }
  });
}

template <class T>
void lru_layer_backward(const LruWeights<T>& w, const T* u, const T* checkpoints, const T* grad_y,
                        const LruGradients<T>& grad, LruShape shape) {
  const Padded<T> p(w, shape);
  const int64_t LH = shape.length * shape.hidden, chunks = chunk_count(shape.length);
  const int64_t parts = part_count(shape.batch);
  std::vector<std::unique_ptr<Partial<T>>> partials;
  for (int64_t i = 0; i < parts; ++i) partials.push_back(std::make_unique<Partial<T>>(p));
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      Scratch<T> scratch(p);
      for (int64_t b = first_row(part, parts, shape.batch); b < first_row(part + 1, parts, shape.batch); ++b)
        backward_row(p, u + b * LH, grad_y + b * LH, checkpoints + b * chunks * p.s, grad.u + b * LH, shape,
                     scratch, *partials[part]);
    }
  });
  write_gradients(p, partials, grad, shape);
}

template void lru_layer_forward<float>(const LruWeights<float>&, const float*, float*, float*, LruShape);
template void lru_layer_forward<double>(const LruWeights<double>&, const double*, double*, double*, LruShape);
template void lru_layer_backward<float>(const LruWeights<float>&, const float*, const float*, const float*,
                                        const LruGradients<float>&, LruShape);
template void lru_layer_backward<double>(const LruWeights<double>&, const double*, const double*, const double*,
                                         const LruGradients<double>&, LruShape);

}  // namespace compressm::kernels
