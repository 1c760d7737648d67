// dml/backend/kernels/index.hpp: the two shapes of index functor that both
// backends launch.
//
// A 1-D op has `DML_HD void operator()(std::int64_t i) const` and is run for
// every i in [0, n) by Backend<D>::for_each(n, op). A 2-D op covers a
// rows x cols grid: either `operator()(r, c)`, or `row(r)` returning a small
// callable `(c)` that holds what the row's columns share (base pointers,
// per-row coefficients), so the host's inner loop over c stays a plain
// vectorisable loop. Backend<D>::for_each_2d(rows, cols, op) runs it: the host
// one row per task, the device one thread per (r, c). Either way each (r, c)
// goes through run_cols, the one place that knows the two forms.
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

template <class Op>
concept RowOp = requires(const Op& op, std::int64_t r) { op.row(r); };

// Runs op on columns [c0, c1) of row r.
template <class Op>
DML_HD void run_cols(const Op& op, std::int64_t r, std::int64_t c0, std::int64_t c1) {
  if constexpr (RowOp<Op>) {
    const auto row = op.row(r);
    for (std::int64_t c = c0; c < c1; ++c) row(c);
  } else {
    for (std::int64_t c = c0; c < c1; ++c) op(r, c);
  }
}

}  // namespace dml::kernels
