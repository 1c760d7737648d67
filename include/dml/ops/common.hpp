// dml/ops/common.hpp: helpers shared by the op front ends.
#pragma once

#include <vector>

#include "../backend/broadcast.hpp"
#include "../backend/functors.hpp"
#include "../core/tensor.hpp"

namespace dml::detail {

// Whether an op on these inputs must record a graph node.
template <class T, class D, class... More>
bool tracking(const Tensor<T, D>& a, const More&... more) {
  if (AnomalyMode::enabled()) return true;  // detail::record checks the output (DetectAnomaly)
  if (!GradMode::enabled()) return false;
  return (a.requires_grad() || ... || more.requires_grad());
}

template <class T, class D>
using Grads = std::vector<Tensor<T, D>>;

// Sums `g` down to `target` (the shape an input had before broadcasting).
template <class T, class D>
Tensor<T, D> sum_to(const Tensor<T, D>& g, const Shape& target) {
  if (g.shape() == target) return g;
  ReducePlan plan = make_reduce_plan(g.shape(), target);
  Tensor<T, D> out = Tensor<T, D>::empty(target);
  Backend<D>::reduce_to(plan, g.data(), out.data(), target.numel());
  return out;
}

// Checks that `x` has rank `rank`, naming the op and the shape otherwise.
template <class T, class D>
void expect_rank(const Tensor<T, D>& x, int rank, const char* op, const char* what = "input") {
  DML_CHECK(x.defined(), op, ": ", what, " is an undefined tensor");
  DML_CHECK(x.rank() == rank, op, ": ", what, " must have rank ", rank, ", got shape ", x.shape().str());
}

// Checks every index of a 1-D label/index tensor lies in [0, limit).
template <class D>
void expect_indices(const Tensor<std::int64_t, D>& idx, std::int64_t limit, const char* op) {
  std::vector<std::int64_t> host;
  const std::int64_t* p;
  if constexpr (Backend<D>::kHostAccessible) {
    p = idx.data();
  } else {
    host = idx.to_vector();
    p = host.data();
  }
  for (std::int64_t i = 0; i < idx.numel(); ++i)
    DML_CHECK(p[i] >= 0 && p[i] < limit, op, ": index ", p[i], " at position ", i, " is outside [0, ", limit, ")");
}

}  // namespace dml::detail
