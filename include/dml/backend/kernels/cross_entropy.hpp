// dml/backend/kernels/cross_entropy.hpp: the gradient of the mean
// label-smoothed cross-entropy with respect to the logits.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../math.hpp"

namespace dml::kernels {

// dx[r, c] = (softmax[r, c] - q[r, c]) * g / rows, from logp = log-softmax,
// q = eps / C + (1 - eps) [c == y_r]. g points at one element (the upstream
// gradient of the mean loss) in the same memory as logp. 2-D over (r, c).
template <class T>
struct CrossEntropyBackward {
  const T* logp;
  const std::int64_t* labels;
  const T* g;
  T* dx;
  std::int64_t rows, cols;
  T eps;
  DML_HD void operator()(std::int64_t r, std::int64_t c) const {
    const std::int64_t k = r * cols + c;
    const T scale = g[0] / T(rows);
    const T q = eps / T(cols) + (c == labels[r] ? T(1) - eps : T(0));
    dx[k] = (math::exp(logp[k]) - q) * scale;
  }
};

}  // namespace dml::kernels
