// dml/backend/cpu/pool.hpp: the pooling backwards on the host, as scatters
// of each cell's gradient; they parallelise over (image, channel) planes, so
// the scatters never race. (The forwards are in kernels/pool.hpp; the device
// gathers instead, backend/cuda/pool.cuh.)
#pragma once

#include <cstdint>

#include "../geometry.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Pool {
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
