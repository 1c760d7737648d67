// dml/backend/cpu/rows.hpp: the row reductions on N x C matrices, a
// sequential sum per row: L2 normalisation, log-softmax, the smoothed NLL
// (gathers, scatters and the cross-entropy gradient are in kernels/portable.hpp).
#pragma once

#include <cstdint>

#include "../math.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Rows {
  // y[r] = x[r] / max(|x[r]|, eps); norm[r] = |x[r]| (unclamped).
  template <class T>
  static void l2_normalize(const T* x, T* y, T* norm, std::int64_t rows, std::int64_t cols, T eps) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* xr = x + r * cols;
          T ss = T(0);
          for (std::int64_t c = 0; c < cols; ++c) ss += xr[c] * xr[c];
          T n = math::sqrt(ss);
          norm[r] = n;
          T inv = T(1) / math::max(n, eps);
          for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * inv;
        },
        cols);
  }
  // dx for y = x / max(|x|, eps): (g - y <g, y>) / |x|, or g / eps inside the clamp.
  template <class T>
  static void l2_normalize_backward(const T* g, const T* y, const T* norm, T* dx, std::int64_t rows,
                                    std::int64_t cols, T eps) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* gr = g + r * cols;
          const T* yr = y + r * cols;
          T* d = dx + r * cols;
          if (norm[r] < eps) {
            for (std::int64_t c = 0; c < cols; ++c) d[c] = gr[c] / eps;
            return;
          }
          T dot = T(0);
          for (std::int64_t c = 0; c < cols; ++c) dot += gr[c] * yr[c];
          T inv = T(1) / norm[r];
          for (std::int64_t c = 0; c < cols; ++c) d[c] = (gr[c] - yr[c] * dot) * inv;
        },
        cols);
  }

  // y[r] = x[r] - logsumexp(x[r]), with the row maximum subtracted first.
  template <class T>
  static void log_softmax(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* xr = x + r * cols;
          T m = xr[0];
          for (std::int64_t c = 1; c < cols; ++c) m = math::max(m, xr[c]);
          T s = T(0);
          for (std::int64_t c = 0; c < cols; ++c) s += math::exp(xr[c] - m);
          T lse = m + math::log(s);
          for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] - lse;
        },
        cols);
  }
  // dx = g - softmax * sum(g), per row; y is the log-softmax output.
  template <class T>
  static void log_softmax_backward(const T* g, const T* y, T* dx, std::int64_t rows, std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* gr = g + r * cols;
          T s = T(0);
          for (std::int64_t c = 0; c < cols; ++c) s += gr[c];
          for (std::int64_t c = 0; c < cols; ++c) dx[r * cols + c] = gr[c] - math::exp(y[r * cols + c]) * s;
        },
        cols);
  }

  // Per-row loss from log-probabilities with label smoothing eps:
  // loss[r] = -(1 - eps) logp[r, y_r] - eps / C * sum_c logp[r, c].
  template <class T>
  static void nll_smoothed(const T* logp, const std::int64_t* labels, T* loss, std::int64_t rows, std::int64_t cols,
                           T eps) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* lr = logp + r * cols;
          T l = -(T(1) - eps) * lr[labels[r]];
          if (eps != T(0)) {
            T s = T(0);
            for (std::int64_t c = 0; c < cols; ++c) s += lr[c];
            l -= eps / T(cols) * s;
          }
          loss[r] = l;
        },
        cols);
  }
};

}  // namespace dml::cpu
