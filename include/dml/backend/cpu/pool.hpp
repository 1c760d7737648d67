// dml/backend/cpu/pool.hpp: max pooling with padding, and adaptive average and
// max pooling, on NCHW planes. Every kernel parallelises over (image, channel)
// planes, so the backward scatters never race.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../geometry.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Pool {
  // y = max over each window (padding never wins); arg = the flat index
  // ih * w + iw of the first maximum in row-major order, as PyTorch. NaN
  // counts as the maximum (the first NaN wins).
  template <class T>
  static void max_pool2d(const Pool2dGeom& geom, const T* x, T* y, std::int64_t* arg) {
    const Pool2dGeom g = geom;
    const std::int64_t howo = g.ho * g.wo;
    parallel_for(
        g.n * g.c,
        [g, howo, x, y, arg](std::int64_t plane) {
          const T* xp = x + plane * g.h * g.w;
          T* yp = y + plane * howo;
          std::int64_t* ap = arg + plane * howo;
          for (std::int64_t oh = 0; oh < g.ho; ++oh) {
            const std::int64_t h0 = std::max<std::int64_t>(oh * g.sh - g.ph, 0);
            const std::int64_t h1 = std::min<std::int64_t>(oh * g.sh - g.ph + g.kh, g.h);
            for (std::int64_t ow = 0; ow < g.wo; ++ow) {
              const std::int64_t w0 = std::max<std::int64_t>(ow * g.sw - g.pw, 0);
              const std::int64_t w1 = std::min<std::int64_t>(ow * g.sw - g.pw + g.kw, g.w);
              // Selects, not branches (random data would mispredict `v > best`
              // half the time); NaN, which never compares greater, is rare and
              // takes a second scan for the first one.
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
              yp[oh * g.wo + ow] = best;
              ap[oh * g.wo + ow] = bi;
            }
          }
        },
        howo * g.kh * g.kw);
  }

  // gx += the gradient routed to each window's maximum.
  template <class T>
  static void max_pool2d_backward(const Pool2dGeom& g, const T* gy, const std::int64_t* arg, T* gx) {
    const std::int64_t howo = g.ho * g.wo;
    parallel_for(
        g.n * g.c,
        [&](std::int64_t plane) {
          T* gp = gx + plane * g.h * g.w;
          const T* gyp = gy + plane * howo;
          const std::int64_t* ap = arg + plane * howo;
          for (std::int64_t q = 0; q < howo; ++q) gp[ap[q]] += gyp[q];
        },
        howo);
  }

  // Average of each adaptive cell (geometry in AdaptivePoolGeom).
  template <class T>
  static void adaptive_avg_pool2d(const AdaptivePoolGeom& g, const T* x, T* y) {
    parallel_for(
        g.n * g.c,
        [&](std::int64_t plane) {
          std::int64_t b = plane / g.c, ch = plane % g.c;
          const T* xp = x + plane * g.h * g.w;
          T* yp = y + g.y_plane(b, ch);
          for (std::int64_t i = 0; i < g.ho; ++i)
            for (std::int64_t j = 0; j < g.wo; ++j) {
              std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
              T acc = T(0);
              for (std::int64_t ih = h0; ih < h1; ++ih)
                for (std::int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * g.w + iw];
              yp[i * g.wo + j] = acc / T((h1 - h0) * (w1 - w0));
            }
        },
        g.h * g.w);
  }

  // gx += gy spread evenly over each cell.
  template <class T>
  static void adaptive_avg_pool2d_backward(const AdaptivePoolGeom& g, const T* gy, T* gx) {
    parallel_for(
        g.n * g.c,
        [&](std::int64_t plane) {
          std::int64_t b = plane / g.c, ch = plane % g.c;
          T* gp = gx + plane * g.h * g.w;
          const T* gyp = gy + g.y_plane(b, ch);
          for (std::int64_t i = 0; i < g.ho; ++i)
            for (std::int64_t j = 0; j < g.wo; ++j) {
              std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
              T v = gyp[i * g.wo + j] / T((h1 - h0) * (w1 - w0));
              for (std::int64_t ih = h0; ih < h1; ++ih)
                for (std::int64_t iw = w0; iw < w1; ++iw) gp[ih * g.w + iw] += v;
            }
        },
        g.h * g.w);
  }

  // Maximum of each adaptive cell; arg holds the flat in-plane index of the
  // first maximum, laid out [n, c, ho, wo] (not widened by y_channels).
  template <class T>
  static void adaptive_max_pool2d(const AdaptivePoolGeom& g, const T* x, T* y, std::int64_t* arg) {
    parallel_for(
        g.n * g.c,
        [&](std::int64_t plane) {
          std::int64_t b = plane / g.c, ch = plane % g.c;
          const T* xp = x + plane * g.h * g.w;
          T* yp = y + g.y_plane(b, ch);
          std::int64_t* ap = arg + plane * g.ho * g.wo;
          for (std::int64_t i = 0; i < g.ho; ++i)
            for (std::int64_t j = 0; j < g.wo; ++j) {
              std::int64_t h0 = g.row_begin(i), h1 = g.row_end(i), w0 = g.col_begin(j), w1 = g.col_end(j);
              T best = xp[h0 * g.w + w0];
              std::int64_t bi = h0 * g.w + w0;
              for (std::int64_t ih = h0; ih < h1; ++ih)
                for (std::int64_t iw = w0; iw < w1; ++iw) {
                  T v = xp[ih * g.w + iw];
                  if (v > best || (v != v && best == best)) {
                    best = v;
                    bi = ih * g.w + iw;
                  }
                }
              yp[i * g.wo + j] = best;
              ap[i * g.wo + j] = bi;
            }
        },
        g.h * g.w);
  }

  // gx += gy routed to each cell's maximum.
  template <class T>
  static void adaptive_max_pool2d_backward(const AdaptivePoolGeom& g, const T* gy, const std::int64_t* arg, T* gx) {
    const std::int64_t howo = g.ho * g.wo;
    parallel_for(
        g.n * g.c,
        [&](std::int64_t plane) {
          std::int64_t b = plane / g.c, ch = plane % g.c;
          T* gp = gx + plane * g.h * g.w;
          const T* gyp = gy + g.y_plane(b, ch);
          const std::int64_t* ap = arg + plane * howo;
          for (std::int64_t q = 0; q < howo; ++q) gp[ap[q]] += gyp[q];
        },
        howo);
  }
};

}  // namespace dml::cpu
