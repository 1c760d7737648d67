// dml/backend/cuda/pool.cuh: the pooling backwards on the device (the
// forwards are kernels/pool.hpp's).
//
// They are gathers, not the host's scatters: a thread per input element adds
// the gradients of the cells that chose it (or cover it) in the order the
// host's scatter adds them, so there are no atomics and the sums are the
// host's, bit for bit.
#pragma once

#include <cstdint>

#include "../geometry.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

// Output positions [lo, hi] along one axis whose window (start q * s - p,
// length k) covers input position i, clamped to [0, out).
DML_HD void covering(std::int64_t i, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t out,
                            std::int64_t& lo, std::int64_t& hi) {
  const std::int64_t a = i + p - k + 1;  // q * s >= a
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (i + p) / s;  // q * s <= i + p
  if (hi > out - 1) hi = out - 1;
}

// gx[i] += gy[q] for every output q (in increasing order) whose argmax is i.
template <class T>
struct MaxPoolBackwardOp {
  Pool2dGeom g;
  const T* gy;
  const std::int64_t* arg;
  T* gx;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t iw = k % g.w, ih = (k / g.w) % g.h, plane = k / (g.w * g.h);
    std::int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.ho, oh0, oh1);
    covering(iw, g.kw, g.sw, g.pw, g.wo, ow0, ow1);
    const std::int64_t self = ih * g.w + iw, base = plane * g.ho * g.wo;
    T acc = gx[k];
    for (std::int64_t oh = oh0; oh <= oh1; ++oh)
      for (std::int64_t ow = ow0; ow <= ow1; ++ow) {
        const std::int64_t q = base + oh * g.wo + ow;
        if (arg[q] == self) acc += gy[q];
      }
    gx[k] = acc;
  }
};

// Adaptive cells [lo, hi] along one axis that contain input position i:
// cell j covers [floor(j in / out), ceil((j + 1) in / out)).
DML_HD void adaptive_covering(std::int64_t i, std::int64_t in, std::int64_t out, std::int64_t& lo,
                                     std::int64_t& hi) {
  lo = (i * out) / in;
  hi = ((i + 1) * out - 1) / in;
  if (hi > out - 1) hi = out - 1;
}

// gx[i] += gy[cell] / cell size for every cell containing i, in row-major cell order.
template <class T>
struct AdaptiveAvgBackwardOp {
  AdaptivePoolGeom g;
  const T* gy;
  T* gx;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t iw = k % g.w, ih = (k / g.w) % g.h, plane = k / (g.w * g.h);
    const std::int64_t b = plane / g.c, ch = plane % g.c;
    const T* gyp = gy + g.y_plane(b, ch);
    std::int64_t i0, i1, j0, j1;
    adaptive_covering(ih, g.h, g.ho, i0, i1);
    adaptive_covering(iw, g.w, g.wo, j0, j1);
    T acc = gx[k];
    for (std::int64_t i = i0; i <= i1; ++i)
      for (std::int64_t j = j0; j <= j1; ++j) {
        const std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
        if (ih < h0 || ih >= h1 || iw < w0 || iw >= w1) continue;
        acc += gyp[i * g.wo + j] / T((h1 - h0) * (w1 - w0));
      }
    gx[k] = acc;
  }
};

// gx[i] += gy[cell] for every cell (in row-major order) whose argmax is i.
template <class T>
struct AdaptiveMaxBackwardOp {
  AdaptivePoolGeom g;
  const T* gy;
  const std::int64_t* arg;
  T* gx;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t iw = k % g.w, ih = (k / g.w) % g.h, plane = k / (g.w * g.h);
    const std::int64_t b = plane / g.c, ch = plane % g.c;
    const T* gyp = gy + g.y_plane(b, ch);
    const std::int64_t* ap = arg + plane * g.ho * g.wo;
    std::int64_t i0, i1, j0, j1;
    adaptive_covering(ih, g.h, g.ho, i0, i1);
    adaptive_covering(iw, g.w, g.wo, j0, j1);
    const std::int64_t self = ih * g.w + iw;
    T acc = gx[k];
    for (std::int64_t i = i0; i <= i1; ++i)
      for (std::int64_t j = j0; j <= j1; ++j)
        if (ap[i * g.wo + j] == self) acc += gyp[i * g.wo + j];
    gx[k] = acc;
  }
};

}  // namespace detail

struct Pool {
  // gx += the gradient routed to each window's maximum.
  template <class T>
  static void max_pool2d_backward(const Pool2dGeom& g, const T* gy, const std::int64_t* arg, T* gx) {
    if (g.ho <= 0 || g.wo <= 0) return;
    detail::for_each(g.n * g.c * g.h * g.w, detail::MaxPoolBackwardOp<T>{g, gy, arg, gx});
  }

  // gx += gy spread evenly over each cell.
  template <class T>
  static void adaptive_avg_pool2d_backward(const AdaptivePoolGeom& g, const T* gy, T* gx) {
    detail::for_each(g.n * g.c * g.h * g.w, detail::AdaptiveAvgBackwardOp<T>{g, gy, gx});
  }

  // gx += gy routed to each cell's maximum.
  template <class T>
  static void adaptive_max_pool2d_backward(const AdaptivePoolGeom& g, const T* gy, const std::int64_t* arg, T* gx) {
    detail::for_each(g.n * g.c * g.h * g.w, detail::AdaptiveMaxBackwardOp<T>{g, gy, arg, gx});
  }
};

}  // namespace dml::cuda
