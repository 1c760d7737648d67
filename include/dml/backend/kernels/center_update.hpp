// dml/backend/kernels/center_update.hpp: Center Loss's center update (Wen et
// al. 2016): for each class j present in the batch,
//   c_j -= alpha / (1 + n_j) * sum_{y_i = j} (c_j - x_i).
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// 2-D over (class j, dimension d): sums c_jd - x_rd over the rows labelled j
// in row order, then moves c_jd; a class with no row stays. Each (j, d) reads
// and writes only its own center element, so the result does not depend on
// the launch; the cost is rows per element. Labels lie in [0, classes).
template <class T>
struct CenterUpdate {
  T* centers;
  const T* x;
  const std::int64_t* labels;
  std::int64_t rows, dim;
  T alpha;
  DML_HD void operator()(std::int64_t j, std::int64_t d) const {
    const std::int64_t k = j * dim + d;
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

}  // namespace dml::kernels
