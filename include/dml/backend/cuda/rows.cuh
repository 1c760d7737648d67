// dml/backend/cuda/rows.cuh: the row reductions on N x C matrices: L2
// normalisation, log-softmax, the smoothed NLL (gathers, scatters and the
// cross-entropy gradient are in kernels/portable.hpp).
//
// Row reductions use one warp per row (lanes stride over the columns, then an
// xor-butterfly sum leaves the same bits in every lane): deterministic.
#pragma once

#include <cstdint>

#include "../math.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

template <class Body>
__global__ void warp_rows_kernel(Body body, std::int64_t rows) {
  int lane = threadIdx.x % kWarp;
  std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * blockDim.x / kWarp;
  for (std::int64_t r = warp; r < rows; r += warps) body(r, lane);
}

// Calls body(r, lane) with one warp per row r in [0, rows).
template <class Body>
void for_each_row(std::int64_t rows, const Body& body) {
  if (rows <= 0) return;
  warp_rows_kernel<<<grid_for(rows * kWarp), kBlock, 0, stream()>>>(body, rows);
  DML_CUDA_CHECK_LAUNCH();
}

template <class T>
struct L2NormalizeRow {
  const T* x;
  T* y;
  T* norm;
  std::int64_t cols;
  T eps;
  __device__ __forceinline__ void operator()(std::int64_t r, int lane) const {
    const T* xr = x + r * cols;
    T ss = T(0);
    for (std::int64_t c = lane; c < cols; c += kWarp) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    T n = math::sqrt(ss);
    if (lane == 0) norm[r] = n;
    T inv = T(1) / math::max(n, eps);
    for (std::int64_t c = lane; c < cols; c += kWarp) y[r * cols + c] = xr[c] * inv;
  }
};

template <class T>
struct L2NormalizeBackwardRow {
  const T* g;
  const T* y;
  const T* norm;
  T* dx;
  std::int64_t cols;
  T eps;
  __device__ __forceinline__ void operator()(std::int64_t r, int lane) const {
    const T* gr = g + r * cols;
    const T* yr = y + r * cols;
    T* d = dx + r * cols;
    if (norm[r] < eps) {
      for (std::int64_t c = lane; c < cols; c += kWarp) d[c] = gr[c] / eps;
      return;
    }
    T dot = T(0);
    for (std::int64_t c = lane; c < cols; c += kWarp) dot += gr[c] * yr[c];
    dot = warp_sum(dot);
    T inv = T(1) / norm[r];
    for (std::int64_t c = lane; c < cols; c += kWarp) d[c] = (gr[c] - yr[c] * dot) * inv;
  }
};

template <class T>
struct LogSoftmaxRow {
  const T* x;
  T* y;
  std::int64_t cols;
  __device__ __forceinline__ void operator()(std::int64_t r, int lane) const {
    const T* xr = x + r * cols;
    T m = xr[0];
    for (std::int64_t c = lane; c < cols; c += kWarp) m = math::max(m, xr[c]);
    m = warp_max(m);
    T s = T(0);
    for (std::int64_t c = lane; c < cols; c += kWarp) s += math::exp(xr[c] - m);
    s = warp_sum(s);
    T lse = m + math::log(s);
    for (std::int64_t c = lane; c < cols; c += kWarp) y[r * cols + c] = xr[c] - lse;
  }
};

template <class T>
struct LogSoftmaxBackwardRow {
  const T* g;
  const T* y;
  T* dx;
  std::int64_t cols;
  __device__ __forceinline__ void operator()(std::int64_t r, int lane) const {
    const T* gr = g + r * cols;
    T s = T(0);
    for (std::int64_t c = lane; c < cols; c += kWarp) s += gr[c];
    s = warp_sum(s);
    for (std::int64_t c = lane; c < cols; c += kWarp) dx[r * cols + c] = gr[c] - math::exp(y[r * cols + c]) * s;
  }
};

template <class T>
struct NllSmoothedRow {
  const T* logp;
  const std::int64_t* labels;
  T* loss;
  std::int64_t cols;
  T eps;
  __device__ __forceinline__ void operator()(std::int64_t r, int lane) const {
    const T* lr = logp + r * cols;
    T l = -(T(1) - eps) * lr[labels[r]];
    if (eps != T(0)) {
      T s = T(0);
      for (std::int64_t c = lane; c < cols; c += kWarp) s += lr[c];
      s = warp_sum(s);
      l -= eps / T(cols) * s;
    }
    if (lane == 0) loss[r] = l;
  }
};

}  // namespace detail

struct Rows {
  // y[r] = x[r] / max(|x[r]|, eps); norm[r] = |x[r]| (unclamped).
  template <class T>
  static void l2_normalize(const T* x, T* y, T* norm, std::int64_t rows, std::int64_t cols, T eps) {
    detail::for_each_row(rows, detail::L2NormalizeRow<T>{x, y, norm, cols, eps});
  }
  // dx for y = x / max(|x|, eps): (g - y <g, y>) / |x|, or g / eps inside the clamp.
  template <class T>
  static void l2_normalize_backward(const T* g, const T* y, const T* norm, T* dx, std::int64_t rows,
                                    std::int64_t cols, T eps) {
    detail::for_each_row(rows, detail::L2NormalizeBackwardRow<T>{g, y, norm, dx, cols, eps});
  }
  // y[r] = x[r] - logsumexp(x[r]), with the row maximum subtracted first (cols > 0).
  template <class T>
  static void log_softmax(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
    if (cols <= 0) return;
    detail::for_each_row(rows, detail::LogSoftmaxRow<T>{x, y, cols});
  }
  // dx = g - softmax * sum(g), per row; y is the log-softmax output.
  template <class T>
  static void log_softmax_backward(const T* g, const T* y, T* dx, std::int64_t rows, std::int64_t cols) {
    detail::for_each_row(rows, detail::LogSoftmaxBackwardRow<T>{g, y, dx, cols});
  }
  // loss[r] = -(1 - eps) logp[r, y_r] - eps / C * sum_c logp[r, c].
  template <class T>
  static void nll_smoothed(const T* logp, const std::int64_t* labels, T* loss, std::int64_t rows, std::int64_t cols,
                           T eps) {
    detail::for_each_row(rows, detail::NllSmoothedRow<T>{logp, labels, loss, cols, eps});
  }
};

}  // namespace dml::cuda
