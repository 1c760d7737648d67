// dml/backend/cpu/elementwise.hpp: fills, maps and broadcasts on the host.
#pragma once

#include <cstdint>

#include "../broadcast.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Elementwise {
  template <class T>
  static void fill(T* out, std::int64_t n, T value) {
    parallel_for(n, [&](std::int64_t i) { out[i] = value; });
  }
  // out[i] = f(a[i])
  template <class F, class T>
  static void map(F f, const T* a, T* out, std::int64_t n) {
    parallel_for(n, [&](std::int64_t i) { out[i] = f(a[i]); });
  }
  // dx[i] = f.grad(x[i], y[i], g[i])
  template <class F, class T>
  static void map_backward(F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    parallel_for(n, [&](std::int64_t i) { dx[i] = f.grad(x[i], y[i], g[i]); });
  }
  // out[i] = f(a[i], b[i])
  template <class F, class T>
  static void zip(F f, const T* a, const T* b, T* out, std::int64_t n) {
    parallel_for(n, [&](std::int64_t i) { out[i] = f(a[i], b[i]); });
  }
  // out[i] = f(a[i], b[i], c[i])
  template <class F, class T>
  static void zip3(F f, const T* a, const T* b, const T* c, T* out, std::int64_t n) {
    parallel_for(n, [&](std::int64_t i) { out[i] = f(a[i], b[i], c[i]); });
  }
  // out = f(a, b) under a broadcast plan; rows of the last dimension run contiguously.
  template <class F, class T>
  static void broadcast_zip(F f, const ::dml::detail::BroadcastPlan& p, const T* a, const T* b, T* out) {
    std::int64_t inner = p.rank ? p.dims[p.rank - 1] : 1;
    std::int64_t rows = inner ? p.numel() / inner : 0;
    std::int64_t ia = p.rank ? p.sa[p.rank - 1] : 0, ib = p.rank ? p.sb[p.rank - 1] : 0;
    parallel_for(
        rows,
        [&](std::int64_t r) {
          std::int64_t oa, ob;
          p.offsets(r * inner, oa, ob);
          T* o = out + r * inner;
          for (std::int64_t j = 0; j < inner; ++j) o[j] = f(a[oa + j * ia], b[ob + j * ib]);
        },
        inner);
  }
  // out[t] = sum of `full` over the plan's reduced dimensions; fixed order.
  template <class T>
  static void reduce_to(const ::dml::detail::ReducePlan& p, const T* full, T* out, std::int64_t target_numel) {
    parallel_for(
        target_numel,
        [&](std::int64_t t) {
          std::int64_t base = p.base(t);
          T acc = T(0);
          for (std::int64_t k = 0; k < p.red_count; ++k) acc += full[base + p.reduced(k)];
          out[t] = acc;
        },
        p.red_count);
  }
  // y (C x R) = transpose of x (R x C).
  template <class T>
  static void transpose2d(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
    constexpr std::int64_t kBlock = 32;
    std::int64_t row_blocks = (rows + kBlock - 1) / kBlock;
    parallel_for(
        row_blocks,
        [&](std::int64_t rb) {
          std::int64_t r0 = rb * kBlock, r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
          for (std::int64_t c0 = 0; c0 < cols; c0 += kBlock) {
            std::int64_t c1 = c0 + kBlock < cols ? c0 + kBlock : cols;
            for (std::int64_t r = r0; r < r1; ++r)
              for (std::int64_t c = c0; c < c1; ++c) y[c * rows + r] = x[r * cols + c];
          }
        },
        kBlock * cols);
  }
};

}  // namespace dml::cpu
