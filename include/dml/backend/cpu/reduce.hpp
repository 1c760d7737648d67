// dml/backend/cpu/reduce.hpp: sums and maxima, in a fixed order so results do
// not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/argmax.hpp"
#include "launch.hpp"
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

  // out[o, i] = max_l x[o, l, i] and arg[o, i] its first index l (len > 0;
  // the order of kernels/argmax.hpp).
  template <class T>
  static void max_axis(const T* x, T* out, std::int64_t* arg, std::int64_t outer, std::int64_t len,
                       std::int64_t inner) {
    if (len <= 0) return;
    Launch::for_each(outer * inner, kernels::ArgmaxScan<T>{x, out, arg, len, inner}, len);
  }
};

}  // namespace dml::cpu
