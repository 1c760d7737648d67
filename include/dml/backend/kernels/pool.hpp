// dml/backend/kernels/pool.hpp: the forward poolings on NCHW planes, one
// output cell at a time: max pooling with padding, adaptive average and
// adaptive max pooling. 2-D ops over (plane b * c + ch, cell q < ho * wo).
//
// The backwards differ by device: the host scatters each cell's gradient
// (backend/cpu/pool.hpp), the device gathers it per input element to avoid
// atomics (backend/cuda/pool.cuh), in the same order.
#pragma once

#include <cstdint>
#include <limits>

#include "../../config.hpp"
#include "../geometry.hpp"
#include "../math.hpp"

namespace dml::kernels {

// y = max over each window (padding never wins); arg = the flat index
// ih * w + iw of the first maximum in row-major order, as PyTorch. NaN counts
// as the maximum (the first NaN wins).
template <class T>
struct MaxPool {
  Pool2dGeom g;
  const T* x;
  T* y;
  std::int64_t* arg;
  DML_HD void operator()(std::int64_t plane, std::int64_t q) const {
    const std::int64_t oh = q / g.wo, ow = q % g.wo;
    const T* xp = x + plane * g.h * g.w;
    const std::int64_t h0 = math::max<std::int64_t>(oh * g.sh - g.ph, 0);
    const std::int64_t h1 = math::min<std::int64_t>(oh * g.sh - g.ph + g.kh, g.h);
    const std::int64_t w0 = math::max<std::int64_t>(ow * g.sw - g.pw, 0);
    const std::int64_t w1 = math::min<std::int64_t>(ow * g.sw - g.pw + g.kw, g.w);
    // Selects, not branches (random data would mispredict `v > best` half the
    // time); NaN, which never compares greater, is rare and takes a second
    // scan for the first one.
    T best = -std::numeric_limits<T>::infinity();
    std::int64_t bi = h0 * g.w + w0;
    bool nan = false;
    for (std::int64_t ih = h0; ih < h1; ++ih)
      for (std::int64_t iw = w0; iw < w1; ++iw) {
        const T v = xp[ih * g.w + iw];
        const bool take = v > best;
        nan |= v != v;
        best = take ? v : best;
        bi = take ? ih * g.w + iw : bi;
      }
    if (nan) {
      for (std::int64_t ih = h0, found = 0; ih < h1 && !found; ++ih)
        for (std::int64_t iw = w0; iw < w1 && !found; ++iw)
          if (xp[ih * g.w + iw] != xp[ih * g.w + iw]) {
            best = xp[ih * g.w + iw];
            bi = ih * g.w + iw;
            found = 1;
          }
    }
    const std::int64_t k = plane * g.ho * g.wo + q;
    y[k] = best;
    arg[k] = bi;
  }
};

// Average of each adaptive cell (geometry in AdaptivePoolGeom); y may be a
// wider, concatenated tensor (y_channels, y_offset).
template <class T>
struct AdaptiveAvg {
  AdaptivePoolGeom g;
  const T* x;
  T* y;
  DML_HD void operator()(std::int64_t plane, std::int64_t q) const {
    const std::int64_t i = q / g.wo, j = q % g.wo, b = plane / g.c, ch = plane % g.c;
    const T* xp = x + plane * g.h * g.w;
    const std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
    T acc = T(0);
    for (std::int64_t ih = h0; ih < h1; ++ih)
      for (std::int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.w + iw];
    y[g.y_plane(b, ch) + q] = acc / T((h1 - h0) * (w1 - w0));
  }
};

// Maximum of each adaptive cell; arg holds the flat in-plane index of the
// first maximum (a NaN wins), laid out [n, c, ho, wo] (not widened by y_channels).
template <class T>
struct AdaptiveMax {
  AdaptivePoolGeom g;
  const T* x;
  T* y;
  std::int64_t* arg;
  DML_HD void operator()(std::int64_t plane, std::int64_t q) const {
    const std::int64_t i = q / g.wo, j = q % g.wo, b = plane / g.c, ch = plane % g.c;
    const T* xp = x + plane * g.h * g.w;
    const std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
    T best = xp[h0 * g.w + w0];
    std::int64_t bi = h0 * g.w + w0;
    for (std::int64_t ih = h0; ih < h1; ++ih)
      for (std::int64_t iw = w0; iw < w1; ++iw) {
        const T v = xp[ih * g.w + iw];
        if (v > best || (v != v && best == best)) {
          best = v;
          bi = ih * g.w + iw;
        }
      }
    y[g.y_plane(b, ch) + q] = best;
    arg[plane * g.ho * g.wo + q] = bi;
  }
};

}  // namespace dml::kernels
