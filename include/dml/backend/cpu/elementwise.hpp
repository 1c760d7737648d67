// dml/backend/cpu/elementwise.hpp: the broadcast gradient reduction and the
// blocked 2-D transpose on the host (fills, maps and broadcasts are in
// kernels/portable.hpp).
#pragma once

#include <cstdint>

#include "../broadcast.hpp"
#include "../kernels/broadcast.hpp"
#include "launch.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Elementwise {
  // out[t] = sum of `full` over the plan's reduced dimensions; fixed order.
  template <class T>
  static void reduce_to(const ::dml::detail::ReducePlan& p, const T* full, T* out, std::int64_t target_numel) {
    Launch::for_each(target_numel, kernels::ReduceTo<T>{p, full, out}, p.red_count);
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
