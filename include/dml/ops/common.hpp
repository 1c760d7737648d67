// dml/ops/common.hpp: helpers shared by the op front ends.
#pragma once

#include <algorithm>
#include <cstdint>
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

// An index tensor whose values were checked on the host before it was uploaded, vouched for
// while it is in use: expect_indices then trusts the bound instead of reading the tensor (on a
// GPU, a device-to-host copy that waits for the stream). train::Learner vouches for each batch's
// labels, which it has on the host anyway, so that a training step's label checks (cross_entropy,
// apply_margin, Center Loss's gather_rows) copy nothing back. The tensor must not be written
// while vouched for; the vouch holds a reference, so its memory cannot be reused meanwhile.
// Per thread; scopes nest.
template <class D>
class VouchedIndices {
 public:
  // Vouches for `idx` when `host` (the same values on the host) holds no negative index; the
  // bound is then max(host) + 1. A negative index vouches for nothing, so the ops' own check
  // reports it as usual.
  VouchedIndices(const Tensor<std::int64_t, D>& idx, const Tensor<std::int64_t, Cpu>& host) : idx_(idx) {
    DML_CHECK(idx.defined() && host.defined() && idx.numel() == host.numel(),
              "VouchedIndices: the host copy must have the index tensor's size");
    std::int64_t bound = 0;
    const std::int64_t* p = host.data();
    for (std::int64_t i = 0; i < host.numel(); ++i) {
      if (p[i] < 0) return;
      bound = std::max(bound, p[i] + 1);
    }
    registry().push_back({idx.data(), idx.numel(), bound});
    active_ = true;
  }
  ~VouchedIndices() {
    if (!active_) return;
    auto& r = registry();
    for (auto it = r.end(); it != r.begin();)
      if ((--it)->data == idx_.data()) {
        r.erase(it);
        break;
      }
  }
  VouchedIndices(const VouchedIndices&) = delete;
  VouchedIndices& operator=(const VouchedIndices&) = delete;

  // Whether `idx` is vouched for with every value in [0, limit).
  static bool covers(const Tensor<std::int64_t, D>& idx, std::int64_t limit) {
    for (const Entry& e : registry())
      if (e.data == idx.data() && e.numel == idx.numel()) return e.bound <= limit;
    return false;
  }

 private:
  struct Entry {
    const std::int64_t* data;
    std::int64_t numel, bound;
  };
  static std::vector<Entry>& registry() {
    thread_local std::vector<Entry> r;
    return r;
  }
  Tensor<std::int64_t, D> idx_;
  bool active_ = false;
};

// Checks every index of a 1-D label/index tensor lies in [0, limit): from the vouch of a
// VouchedIndices scope when there is one, else by reading the values (copied to the host first
// on a device the host cannot read).
template <class D>
void expect_indices(const Tensor<std::int64_t, D>& idx, std::int64_t limit, const char* op) {
  if (idx.defined() && idx.numel() > 0 && VouchedIndices<D>::covers(idx, limit)) return;
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
