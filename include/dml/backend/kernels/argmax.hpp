// dml/backend/kernels/argmax.hpp: the argmax order (first maximum; a NaN wins
// only at index 0), the scan over one axis that uses it, and its gradient.
//
// The device's warp argmax (backend/cuda/launch.cuh) combines lanes with the
// same argmax_push, so every path gives the host scan's answer.
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// Whether the candidate (cv, ci) beats (v, i) in a scan that keeps the first
// maximum: best = x[0]; take x[l] when x[l] > best. So a NaN can only win at
// index 0 (and then it wins), other NaNs never win, and ties go to the
// smaller index. An index of -1 marks an empty pair. The order is total, so
// pairs may be combined in any grouping.
template <class T>
DML_HD bool argmax_better(T v, std::int64_t i, T cv, std::int64_t ci) {
  if (ci < 0) return false;
  if (cv != cv) return ci == 0;  // a NaN wins only at index 0
  if (i < 0) return true;
  if (v != v) return false;  // a NaN held here sits at index 0
  return cv > v || (cv == v && ci < i);
}

// One step of that scan: element x at index l.
template <class T>
DML_HD void argmax_push(T& v, std::int64_t& i, T x, std::int64_t l) {
  if (argmax_better(v, i, x, l)) {
    v = x;
    i = l;
  }
}

// x viewed as [outer, len, inner] (len > 0): out[o, i] = max_l x[o, l, i] and
// arg[o, i] its first index l. 1-D over t = o * inner + i.
template <class T>
struct ArgmaxScan {
  const T* x;
  T* out;
  std::int64_t* arg;
  std::int64_t len, inner;
  DML_HD void operator()(std::int64_t t) const {
    const std::int64_t o = t / inner, i = t % inner;
    const T* p = x + o * len * inner + i;
    T best = T(0);
    std::int64_t bi = -1;
    for (std::int64_t l = 0; l < len; ++l) argmax_push(best, bi, p[l * inner], l);
    out[t] = best;
    arg[t] = bi;
  }
};

// dx = 0 except dx[o, arg[o, i], i] = g[o, i]. 2-D over (o * len + l, i).
template <class T>
struct ArgmaxBackward {
  const T* g;
  const std::int64_t* arg;
  T* dx;
  std::int64_t len, inner;
  DML_HD void operator()(std::int64_t ol, std::int64_t i) const {
    const std::int64_t t = (ol / len) * inner + i;
    dx[ol * inner + i] = arg[t] == ol % len ? g[t] : T(0);
  }
};

}  // namespace dml::kernels
