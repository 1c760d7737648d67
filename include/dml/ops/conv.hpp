// dml/ops/conv.hpp: differentiable 2-D convolution (NCHW).
#pragma once

#include "../backend/geometry.hpp"
#include "common.hpp"
#include "tracking.hpp"

namespace dml::ops {

// Stride and zero padding, the same along both spatial axes.
struct Conv2dOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
};

// The cross-correlation of x [N, C, H, W] with weight [O, C, kh, kw], plus an
// optional bias [O] (pass an undefined tensor for none), giving [N, O, Ho, Wo]
// with Ho = (H + 2 padding - kh) / stride + 1. Throws dml::Error on wrong
// ranks, a channel mismatch, a bias that is not [O], stride < 1, padding < 0
// or an empty output.
template <class T, class D>
Tensor<T, D> conv2d(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias = Tensor<T, D>(),
                    Conv2dOptions opt = {}) {
  static_assert(Real<T>, "conv2d needs float or double tensors");
  detail::expect_rank(x, 4, "conv2d", "input");
  detail::expect_rank(weight, 4, "conv2d", "weight");
  DML_CHECK(x.dim(1) == weight.dim(1), "conv2d: input of shape ", x.shape().str(), " has ", x.dim(1),
            " channels but weight of shape ", weight.shape().str(), " expects ", weight.dim(1));
  DML_CHECK(!bias.defined() || (bias.rank() == 1 && bias.dim(0) == weight.dim(0)), "conv2d: bias of shape ",
            bias.shape().str(), " does not match weight of shape ", weight.shape().str());
  DML_CHECK(opt.stride >= 1 && opt.padding >= 0, "conv2d: stride ", opt.stride, " and padding ", opt.padding,
            " must be >= 1 and >= 0");
  const Conv2dGeom g = Conv2dGeom::make(x.dim(0), x.dim(1), x.dim(2), x.dim(3), weight.dim(0), weight.dim(2),
                                        weight.dim(3), opt.stride, opt.stride, opt.padding, opt.padding);
  DML_CHECK(g.kh >= 1 && g.kw >= 1 && g.h + 2 * g.ph >= g.kh && g.w + 2 * g.pw >= g.kw, "conv2d: kernel of shape ",
            weight.shape().str(), " with padding ", opt.padding, " does not fit input of shape ", x.shape().str());
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{g.n, g.o, g.ho, g.wo});
  Backend<D>::conv2d_forward(g, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, out.data());
  if (detail::tracking_any({&x, &weight, &bias}))
    detail::record(out, "conv2d", {&x, &weight, &bias},
                   [g, xs = x.detach(), ws = weight.detach()](const Tensor<T, D>& gy, Needs need) {
                     Tensor<T, D> gx, gw, gb;
                     if (need[0]) gx = Tensor<T, D>::empty(xs.shape());
                     if (need[1]) gw = Tensor<T, D>::empty(ws.shape());
                     if (need[2]) gb = Tensor<T, D>::empty(Shape{g.o});
                     Backend<D>::conv2d_backward(g, gy.data(), xs.data(), ws.data(), need[0] ? gx.data() : nullptr,
                                                 need[1] ? gw.data() : nullptr, need[2] ? gb.data() : nullptr);
                     return detail::Grads<T, D>{gx, gw, gb};
                   });
  return out;
}

}  // namespace dml::ops
