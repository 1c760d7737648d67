// dml/backend/kernels/gather.hpp: row and column gathers by an index array,
// and the column scatter that is the gradient of the column gather. Indices
// lie in range (the front ends check).
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// out[r, c] = src[idx[r], c] for rows of length cols (2-D over (r, c)).
template <class T>
struct GatherRows {
  const T* src;
  const std::int64_t* idx;
  T* out;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r, std::int64_t c) const { out[r * cols + c] = src[idx[r] * cols + c]; }
};

// out[r] = x[r, idx[r]] (1-D over rows).
template <class T>
struct GatherCols {
  const T* x;
  const std::int64_t* idx;
  T* out;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r) const { out[r] = x[r * cols + idx[r]]; }
};

// dx = 0 except dx[r, idx[r]] = g[r] (2-D over (r, c)).
template <class T>
struct ScatterCols {
  const T* g;
  const std::int64_t* idx;
  T* dx;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t r, std::int64_t c) const { dx[r * cols + c] = c == idx[r] ? g[r] : T(0); }
};

}  // namespace dml::kernels
