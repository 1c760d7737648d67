// dml/backend/cpu/launch.hpp: how the host runs the index functors of
// backend/kernels/ (kernels/index.hpp has their two shapes).
#pragma once

#include <cstdint>

#include "../kernels/index.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Launch {
  // Calls op(i) for i in [0, n): one contiguous range per thread when the
  // work (n * cost) is worth a fork. Each range runs a local copy of op, so
  // the compiler knows stores through op's pointers cannot change op, and
  // keeps the loop vectorisable.
  template <class Op>
  static void for_each(std::int64_t n, const Op& op, std::int64_t cost = 1) {
    parallel_ranges(
        n,
        [&op](std::int64_t lo, std::int64_t hi) {
          const Op local = op;
          for (std::int64_t i = lo; i < hi; ++i) local(i);
        },
        cost);
  }
  // Runs a 2-D op over rows x cols: rows split across threads, each row's
  // columns an inner loop (through the op's row(r) when it has one).
  template <class Op>
  static void for_each_2d(std::int64_t rows, std::int64_t cols, const Op& op, std::int64_t cost = 1) {
    if (cols <= 0) return;
    parallel_ranges(
        rows,
        [&op, cols](std::int64_t lo, std::int64_t hi) {
          const Op local = op;
          for (std::int64_t r = lo; r < hi; ++r) kernels::run_cols(local, r, 0, cols);
        },
        cols * cost);
  }
};

}  // namespace dml::cpu
