// dml/backend/kernels/expand.hpp: the reverse of a sum over one axis.
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// x viewed as [outer, len, inner]: out[o, l, i] = scale * g[o, i]. 2-D over
// (o * len + l, i).
template <class T>
struct Expand {
  const T* g;
  T* out;
  std::int64_t len, inner;
  T scale;
  DML_HD void operator()(std::int64_t ol, std::int64_t i) const {
    out[ol * inner + i] = scale * g[(ol / len) * inner + i];
  }
};

}  // namespace dml::kernels
