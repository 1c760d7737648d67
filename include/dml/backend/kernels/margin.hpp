// dml/backend/kernels/margin.hpp: a margin policy on the label column of a
// cosine matrix, forward and backward, as 2-D ops over (row, class).
//
// The policies are the heads' trivially copyable DML_HD functors
// (heads/margin_policy.hpp); labels lie in [0, cols) (the front end checks).
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../math.hpp"

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

// AdaCos's batch statistics, one row r per call: b[r] = sum over the
// non-target columns c != y_r of exp(s cos[r, c]) (accumulated in double),
// theta[r] = acos(cos[r, y_r]) with the cosine clamped into [-1 + 1e-7, 1 - 1e-7]
// as the reference AdaCos does. heads::adapt reduces them (mean, median).
template <class T>
struct AdaCosRowStats {
  const T* cos;
  const std::int64_t* labels;
  double s;
  T* b;
  T* theta;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r) const {
    const T* row = cos + r * cols;
    const std::int64_t y = labels[r];
    double acc = 0;
    for (std::int64_t c = 0; c < cols; ++c)
      if (c != y) acc += math::exp(s * double(row[c]));
    b[r] = T(acc);
    theta[r] = math::acos(math::clamp(row[y], T(-1 + 1e-7), T(1 - 1e-7)));
  }
};

}  // namespace dml::kernels
