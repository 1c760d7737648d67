// dml/ops/linear.hpp: the affine map of a fully connected layer, as one node.
#pragma once

#include "../backend/broadcast.hpp"
#include "common.hpp"
#include "tracking.hpp"

namespace dml::ops {

// x [N, in] @ weight[out, in]^T + bias [out] (bias may be undefined), giving
// [N, out]. Throws naming the shapes when they do not fit.
template <class T, class D>
Tensor<T, D> linear(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias = Tensor<T, D>()) {
  static_assert(Real<T>, "linear needs float or double tensors");
  detail::expect_rank(x, 2, "linear", "input");
  detail::expect_rank(weight, 2, "linear", "weight");
  const std::int64_t n = x.dim(0), in = x.dim(1), out_f = weight.dim(0);
  DML_CHECK(weight.dim(1) == in, "linear: input of shape ", x.shape().str(), " does not fit weight of shape ",
            weight.shape().str());
  DML_CHECK(!bias.defined() || (bias.rank() == 1 && bias.dim(0) == out_f), "linear: bias of shape ", bias.shape().str(),
            " does not match weight of shape ", weight.shape().str());
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{n, out_f});
  Backend<D>::gemm(false, true, n, out_f, in, T(1), x.data(), in, weight.data(), in, T(0), out.data(), out_f);
  if (bias.defined() && n > 0)
    Backend<D>::broadcast_zip(fn::Add{}, detail::make_broadcast_plan(out.shape(), out.shape(), bias.shape()),
                              static_cast<const T*>(out.data()), bias.data(), out.data());
  if (detail::tracking_any({&x, &weight, &bias}))
    detail::record(
        out, "linear", {&x, &weight, &bias},
        [xs = x.detach(), ws = weight.detach(), n, in, out_f](const Tensor<T, D>& g, Needs need) {
          Tensor<T, D> gx, gw, gb;
          if (need[0]) {  // g @ W
            gx = Tensor<T, D>::empty(Shape{n, in});
            Backend<D>::gemm(false, false, n, in, out_f, T(1), g.data(), out_f, ws.data(), in, T(0), gx.data(), in);
          }
          if (need[1]) {  // g^T @ x
            gw = Tensor<T, D>::empty(Shape{out_f, in});
            Backend<D>::gemm(true, false, out_f, in, n, T(1), g.data(), out_f, xs.data(), in, T(0), gw.data(), in);
          }
          if (need[2]) {  // column sums of g
            gb = Tensor<T, D>::empty(Shape{out_f});
            Backend<D>::sum_axis(g.data(), gb.data(), 1, n, out_f, T(1));
          }
          return detail::Grads<T, D>{gx, gw, gb};
        });
  return out;
}

}  // namespace dml::ops
