// dml/backend/cpu/margin.hpp: margin policies on the label column, row gathers
// and the Center Loss center update.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel.hpp"

namespace dml::cpu {

struct Margin {
  // out = cos, except out[r, y_r] = p.apply(cos[r, y_r]).
  template <class P, class T>
  static void margin_forward(P p, const T* cos, const std::int64_t* labels, T* out, std::int64_t rows,
                             std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = cos[r * cols + c];
          out[r * cols + labels[r]] = p.apply(cos[r * cols + labels[r]]);
        },
        cols);
  }
  // dcos = g, except dcos[r, y_r] = g[r, y_r] * p.dapply(cos[r, y_r]).
  template <class P, class T>
  static void margin_backward(P p, const T* cos, const std::int64_t* labels, const T* g, T* dcos, std::int64_t rows,
                              std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          for (std::int64_t c = 0; c < cols; ++c) dcos[r * cols + c] = g[r * cols + c];
          std::int64_t t = r * cols + labels[r];
          dcos[t] = g[t] * p.dapply(cos[t]);
        },
        cols);
  }

  // out[r] = src[idx[r]] for rows of length `cols`.
  template <class T>
  static void gather_rows(const T* src, const std::int64_t* idx, T* out, std::int64_t rows, std::int64_t cols) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
          const T* s = src + idx[r] * cols;
          for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = s[c];
        },
        cols);
  }

  // Center Loss update (Wen et al. 2016): for each class j present in the
  // batch, c_j -= alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j). Samples are
  // visited in index order, so the result is deterministic.
  template <class T>
  static void center_update(T* centers, const T* x, const std::int64_t* labels, std::int64_t rows, std::int64_t dim,
                            std::int64_t classes, T alpha) {
    std::vector<std::int64_t> count(static_cast<std::size_t>(classes), 0);
    for (std::int64_t r = 0; r < rows; ++r) ++count[static_cast<std::size_t>(labels[r])];
    std::vector<T> delta(static_cast<std::size_t>(classes * dim), T(0));
    for (std::int64_t r = 0; r < rows; ++r) {
      std::int64_t j = labels[r];
      for (std::int64_t d = 0; d < dim; ++d) delta[j * dim + d] += centers[j * dim + d] - x[r * dim + d];
    }
    for (std::int64_t j = 0; j < classes; ++j) {
      if (count[static_cast<std::size_t>(j)] == 0) continue;
      T scale = alpha / T(1 + count[static_cast<std::size_t>(j)]);
      for (std::int64_t d = 0; d < dim; ++d) centers[j * dim + d] -= scale * delta[j * dim + d];
    }
  }
};

}  // namespace dml::cpu
