// dml/backend/kernels/margin.hpp: a margin policy on the label column of a
// cosine matrix, forward and backward, as 2-D ops over (row, class).
//
// The policies are the heads' trivially copyable DML_HD functors
// (heads/margin_policy.hpp); labels lie in [0, cols) (the front end checks).
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// out = cos, except out[r, y_r] = p.apply(cos[r, y_r]).
template <class P, class T>
struct MarginForward {
  P p;
  const T* cos;
  const std::int64_t* labels;
  T* out;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r, std::int64_t c) const {
    const std::int64_t k = r * cols + c;
    out[k] = c == labels[r] ? p.apply(cos[k]) : cos[k];
  }
};

// dcos = g, except dcos[r, y_r] = g[r, y_r] * p.dapply(cos[r, y_r]).
template <class P, class T>
struct MarginBackward {
  P p;
  const T* cos;
  const std::int64_t* labels;
  const T* g;
  T* dcos;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r, std::int64_t c) const {
    const std::int64_t k = r * cols + c;
    dcos[k] = c == labels[r] ? g[k] * p.dapply(cos[k]) : g[k];
  }
};

}  // namespace dml::kernels
