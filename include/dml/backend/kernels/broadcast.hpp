// dml/backend/kernels/broadcast.hpp: a binary functor under a broadcast plan,
// and the reduction of a broadcast gradient back to an operand's shape.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../broadcast.hpp"

namespace dml::kernels {

// out = f(a, b) under plan p, as a 2-D op over (rows of the last dimension,
// position in the row): rows = numel / inner, cols = inner = p.dims[rank - 1]
// (1 for rank 0). A row's offsets are computed once per row on the host.
template <class F, class T>
struct BroadcastZip {
  F f;
  ::dml::detail::BroadcastPlan p;  // by value: it travels in a kernel's parameters
  const T* a;
  const T* b;
  T* out;

  DML_HD std::int64_t inner() const { return p.rank ? p.dims[p.rank - 1] : 1; }

  struct Row {
    F f;
    const T* a;
    const T* b;
    T* out;
    std::int64_t ia, ib;
    DML_HD void operator()(std::int64_t j) const { out[j] = f(a[j * ia], b[j * ib]); }
  };
  DML_HD Row row(std::int64_t r) const {
    const std::int64_t n = inner();
    std::int64_t oa, ob;
    p.offsets(r * n, oa, ob);
    return Row{f, a + oa, b + ob, out + r * n, p.rank ? p.sa[p.rank - 1] : 0, p.rank ? p.sb[p.rank - 1] : 0};
  }
};

// out[t] = sum of `full` over the plan's reduced dimensions, in index order.
template <class T>
struct ReduceTo {
  ::dml::detail::ReducePlan p;
  const T* full;
  T* out;
  DML_HD void operator()(std::int64_t t) const {
    const std::int64_t base = p.base(t);
    T acc = T(0);
    for (std::int64_t k = 0; k < p.red_count; ++k) acc += full[base + p.reduced(k)];
    out[t] = acc;
  }
};

}  // namespace dml::kernels
