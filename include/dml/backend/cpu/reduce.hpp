// dml/backend/cpu/reduce.hpp: sums and maxima, in a fixed order so results do
// not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel.hpp"

namespace dml::cpu {

struct Reduce {
  static constexpr std::int64_t kChunk = 4096;

  // out[0] = sum of x[0..n): fixed-size chunks summed in index order.
  template <class T>
  static void sum_all(const T* x, std::int64_t n, T* out) {
    std::int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<T> partial(static_cast<std::size_t>(chunks > 0 ? chunks : 1), T(0));
    parallel_for(
        chunks,
        [&](std::int64_t c) {
          std::int64_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
          T acc = T(0);
          for (std::int64_t i = lo; i < hi; ++i) acc += x[i];
          partial[static_cast<std::size_t>(c)] = acc;
        },
        kChunk);
    T acc = T(0);
    for (T p : partial) acc += p;
    out[0] = acc;
  }

  // x viewed as [outer, len, inner]; out[o, i] = scale * sum_l x[o, l, i].
  template <class T>
  static void sum_axis(const T* x, T* out, std::int64_t outer, std::int64_t len, std::int64_t inner, T scale) {
    parallel_for(
        outer,
        [&](std::int64_t o) {
          const T* xo = x + o * len * inner;
          T* oo = out + o * inner;
          if (inner == 1) {
            T acc = T(0);
            for (std::int64_t l = 0; l < len; ++l) acc += xo[l];
            oo[0] = acc * scale;
            return;
          }
          for (std::int64_t i = 0; i < inner; ++i) oo[i] = T(0);
          for (std::int64_t l = 0; l < len; ++l)
            for (std::int64_t i = 0; i < inner; ++i) oo[i] += xo[l * inner + i];
          for (std::int64_t i = 0; i < inner; ++i) oo[i] *= scale;
        },
        len * inner);
  }

  // The reverse of sum_axis: out[o, l, i] = scale * g[o, i].
  template <class T>
  static void expand_axis(const T* g, T* out, std::int64_t outer, std::int64_t len, std::int64_t inner, T scale) {
    parallel_for(
        outer,
        [&](std::int64_t o) {
          for (std::int64_t l = 0; l < len; ++l)
            for (std::int64_t i = 0; i < inner; ++i) out[(o * len + l) * inner + i] = scale * g[o * inner + i];
        },
        len * inner);
  }

  // out[o, i] = max_l x[o, l, i] and arg[o, i] its first index l.
  template <class T>
  static void max_axis(const T* x, T* out, std::int64_t* arg, std::int64_t outer, std::int64_t len,
                       std::int64_t inner) {
    parallel_for(
        outer * inner,
        [&](std::int64_t t) {
          std::int64_t o = t / inner, i = t % inner;
          const T* xo = x + o * len * inner + i;
          T best = xo[0];
          std::int64_t bi = 0;
          for (std::int64_t l = 1; l < len; ++l)
            if (xo[l * inner] > best) {
              best = xo[l * inner];
              bi = l;
            }
          out[t] = best;
          arg[t] = bi;
        },
        len);
  }

  // dx = 0 except dx[o, arg[o, i], i] = g[o, i].
  template <class T>
  static void max_axis_backward(const T* g, const std::int64_t* arg, T* dx, std::int64_t outer, std::int64_t len,
                                std::int64_t inner) {
    parallel_for(
        outer,
        [&](std::int64_t o) {
          T* d = dx + o * len * inner;
          for (std::int64_t k = 0; k < len * inner; ++k) d[k] = T(0);
          for (std::int64_t i = 0; i < inner; ++i) d[arg[o * inner + i] * inner + i] = g[o * inner + i];
        },
        len * inner);
  }
};

}  // namespace dml::cpu
