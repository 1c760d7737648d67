// dml/backend/cpu/rows.hpp: row-wise kernels on N x C matrices: gather and
// scatter of one column per row, L2 normalisation, log-softmax, cross-entropy.
#pragma once

#include <cstdint>

#include "../math.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Rows {
  // out[r] = x[r, idx[r]]; indices are validated by the caller.
  template <class T>
  static void gather_cols(const T* x, const std::int64_t* idx, T* out, std::int64_t rows, std::int64_t cols) {
    parallel_for(rows, [&](std::int64_t r) { out[r] = x[r * cols + idx[r]]; });
  }
  // dx = 0 except dx[r, idx[r]] = g[r].
  template <class T>
  static void scatter_cols(const T* g, const std::int64_t* idx, T* dx, std::int64_t rows, std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          T* d = dx + r * cols;
          for (std::int64_t c = 0; c < cols; ++c) d[c] = T(0);
          d[idx[r]] = g[r];
        },
        cols);
  }

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
  // d(mean loss)/dlogits scaled by the upstream scalar g: (softmax - q) * g / rows.
  template <class T>
  static void cross_entropy_backward(const T* logp, const std::int64_t* labels, const T* g, T* dx,
                                     std::int64_t rows, std::int64_t cols, T eps) {
    T scale = g[0] / T(rows);
    parallel_for(
        rows,
        [&](std::int64_t r) {
          for (std::int64_t c = 0; c < cols; ++c) {
            T q = eps / T(cols) + (c == labels[r] ? T(1) - eps : T(0));
            dx[r * cols + c] = (math::exp(logp[r * cols + c]) - q) * scale;
          }
        },
        cols);
  }
};

}  // namespace dml::cpu
