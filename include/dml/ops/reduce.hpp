// dml/ops/reduce.hpp: differentiable sum, mean and max.
#pragma once

#include "common.hpp"

namespace dml {
namespace detail {

// Splits x's shape around `axis` into [outer, len, inner].
inline void split_axis(const Shape& s, int axis, std::int64_t& outer, std::int64_t& len, std::int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int d = 0; d < axis; ++d) outer *= s[d];
  len = s[axis];
  for (int d = axis + 1; d < s.rank(); ++d) inner *= s[d];
}

// The shape after reducing `axis`, kept as extent 1 or dropped.
inline Shape reduced_shape(const Shape& s, int axis, bool keepdim) {
  std::vector<std::int64_t> d;
  for (int i = 0; i < s.rank(); ++i) {
    if (i != axis) d.push_back(s[i]);
    else if (keepdim) d.push_back(1);
  }
  return Shape(std::span<const std::int64_t>(d.data(), d.size()));
}

template <class T, class D>
Tensor<T, D> sum_axis_scaled(const Tensor<T, D>& x, int axis_in, bool keepdim, bool mean, const char* name) {
  static_assert(Real<T>, "differentiable ops need float or double tensors");
  DML_CHECK(x.defined(), name, ": input is an undefined tensor");
  int axis = x.shape().index(axis_in);
  std::int64_t outer, len, inner;
  split_axis(x.shape(), axis, outer, len, inner);
  DML_CHECK(!mean || len > 0, name, ": mean over the empty axis ", axis, " of shape ", x.shape().str());
  T scale = mean ? T(1) / T(len) : T(1);
  Tensor<T, D> out = Tensor<T, D>::empty(reduced_shape(x.shape(), axis, keepdim));
  Backend<D>::sum_axis(x.data(), out.data(), outer, len, inner, scale);
  if (tracking(x))
    record(out, name, {&x}, [in = x.shape(), outer, len, inner, scale](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(in);
      Backend<D>::expand_axis(g.data(), dx.data(), outer, len, inner, scale);
      return Grads<T, D>{dx};
    });
  return out;
}

template <class T, class D>
Tensor<T, D> sum_all_scaled(const Tensor<T, D>& x, bool mean, const char* name) {
  static_assert(Real<T>, "differentiable ops need float or double tensors");
  DML_CHECK(x.defined(), name, ": input is an undefined tensor");
  std::int64_t n = x.numel();
  DML_CHECK(!mean || n > 0, name, ": mean of an empty tensor of shape ", x.shape().str());
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{});
  Backend<D>::sum_all(x.data(), n, out.data());
  T scale = mean ? T(1) / T(n) : T(1);
  if (mean) Backend<D>::map(fn::Affine{static_cast<double>(scale), 0.0}, out.data(), out.data(), 1);
  if (tracking(x))
    record(out, name, {&x}, [in = x.shape(), n, scale](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(in);
      Backend<D>::expand_axis(g.data(), dx.data(), 1, n, 1, scale);
      return Grads<T, D>{dx};
    });
  return out;
}

}  // namespace detail

namespace ops {

// Sum of all elements, as a rank-0 tensor.
template <class T, class D>
Tensor<T, D> sum(const Tensor<T, D>& x) { return detail::sum_all_scaled(x, false, "sum"); }
// Sum along `axis` (negative counts from the back); keepdim keeps it as extent 1.
template <class T, class D>
Tensor<T, D> sum(const Tensor<T, D>& x, int axis, bool keepdim = false) {
  return detail::sum_axis_scaled(x, axis, keepdim, false, "sum");
}
// Mean of all elements; throws for an empty tensor.
template <class T, class D>
Tensor<T, D> mean(const Tensor<T, D>& x) { return detail::sum_all_scaled(x, true, "mean"); }
template <class T, class D>
Tensor<T, D> mean(const Tensor<T, D>& x, int axis, bool keepdim = false) {
  return detail::sum_axis_scaled(x, axis, keepdim, true, "mean");
}

// Maximum along `axis`; the gradient flows to the first maximal element.
template <class T, class D>
Tensor<T, D> max(const Tensor<T, D>& x, int axis, bool keepdim = false) {
  static_assert(Real<T>, "differentiable ops need float or double tensors");
  DML_CHECK(x.defined(), "max: input is an undefined tensor");
  int ax = x.shape().index(axis);
  std::int64_t outer, len, inner;
  detail::split_axis(x.shape(), ax, outer, len, inner);
  DML_CHECK(len > 0, "max: empty axis ", ax, " of shape ", x.shape().str());
  Shape rs = detail::reduced_shape(x.shape(), ax, keepdim);
  Tensor<T, D> out = Tensor<T, D>::empty(rs);
  Tensor<std::int64_t, D> arg = Tensor<std::int64_t, D>::empty(rs);
  Backend<D>::max_axis(x.data(), out.data(), arg.data(), outer, len, inner);
  if (detail::tracking(x))
    detail::record(out, "max", {&x}, [in = x.shape(), arg, outer, len, inner](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(in);
      Backend<D>::max_axis_backward(g.data(), arg.data(), dx.data(), outer, len, inner);
      return detail::Grads<T, D>{dx};
    });
  return out;
}

}  // namespace ops
}  // namespace dml
