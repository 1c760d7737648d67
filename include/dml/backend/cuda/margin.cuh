// dml/backend/cuda/margin.cuh: margin policies on the label column, row gathers
// and the Center Loss center update, on the device.
//
// The policies are the heads' trivially copyable DML_HD functors
// (heads/margin_policy.hpp): the kernels call the very apply/dapply the CPU
// loop calls. Labels and indices are device arrays.
#pragma once

#include <cstdint>

#include "launch.cuh"

namespace dml::cuda {
namespace detail {

template <class P, class T>
struct MarginForwardOp {
  P p;
  const T* cos;
  const std::int64_t* labels;
  T* out;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t r = k / cols, c = k % cols;
    out[k] = c == labels[r] ? p.apply(cos[k]) : cos[k];
  }
};

template <class P, class T>
struct MarginBackwardOp {
  P p;
  const T* cos;
  const std::int64_t* labels;
  const T* g;
  T* dcos;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t r = k / cols, c = k % cols;
    dcos[k] = c == labels[r] ? g[k] * p.dapply(cos[k]) : g[k];
  }
};

template <class T>
struct GatherRowsOp {
  const T* src;
  const std::int64_t* idx;
  T* out;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t r = k / cols, c = k % cols;
    out[k] = src[idx[r] * cols + c];
  }
};

// Element (j, d) of the centers: sums c_jd - x_rd over the rows labelled j in
// row order (the CPU's order), then c_jd -= alpha / (1 + n_j) * sum. Each
// thread reads and writes only its own center element.
template <class T>
struct CenterUpdateOp {
  T* centers;
  const T* x;
  const std::int64_t* labels;
  std::int64_t rows, dim;
  T alpha;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t j = k / dim, d = k % dim;
    const T c = centers[k];
    std::int64_t count = 0;
    T delta = T(0);
    for (std::int64_t r = 0; r < rows; ++r)
      if (labels[r] == j) {
        ++count;
        delta += c - x[r * dim + d];
      }
    if (count) centers[k] = c - alpha / T(1 + count) * delta;
  }
};

}  // namespace detail

struct Margin {
  // out = cos, except out[r, y_r] = p.apply(cos[r, y_r]).
  template <class P, class T>
  static void margin_forward(P p, const T* cos, const std::int64_t* labels, T* out, std::int64_t rows,
                             std::int64_t cols) {
    detail::for_each(rows * cols, detail::MarginForwardOp<P, T>{p, cos, labels, out, cols});
  }
  // dcos = g, except dcos[r, y_r] = g[r, y_r] * p.dapply(cos[r, y_r]).
  template <class P, class T>
  static void margin_backward(P p, const T* cos, const std::int64_t* labels, const T* g, T* dcos, std::int64_t rows,
                              std::int64_t cols) {
    detail::for_each(rows * cols, detail::MarginBackwardOp<P, T>{p, cos, labels, g, dcos, cols});
  }

  // out[r] = src[idx[r]] for rows of length `cols`.
  template <class T>
  static void gather_rows(const T* src, const std::int64_t* idx, T* out, std::int64_t rows, std::int64_t cols) {
    detail::for_each(rows * cols, detail::GatherRowsOp<T>{src, idx, out, cols});
  }

  // Center Loss update (Wen et al. 2016): for each class j present in the
  // batch, c_j -= alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j). Samples are
  // visited in index order, so the result is deterministic. Labels must lie
  // in [0, classes) (the front end checks them).
  template <class T>
  static void center_update(T* centers, const T* x, const std::int64_t* labels, std::int64_t rows, std::int64_t dim,
                            std::int64_t classes, T alpha) {
    detail::for_each(classes * dim, detail::CenterUpdateOp<T>{centers, x, labels, rows, dim, alpha});
  }
};

}  // namespace dml::cuda
