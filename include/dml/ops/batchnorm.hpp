// dml/ops/batchnorm.hpp: differentiable batch normalisation.
#pragma once

#include "common.hpp"
#include "tracking.hpp"

namespace dml::ops {

struct BatchNormOptions {
  bool training = true;   // batch statistics (and running-stat update) or running statistics
  double momentum = 0.1;  // running = (1 - momentum) running + momentum batch
  double eps = 1e-5;
};

// Batch normalisation of x [N, C], [N, C, L] or [N, C, H, W] per channel C:
// y = (x - mean) / sqrt(var + eps) * weight + bias. weight and bias ([C]) may
// be undefined (1 and 0). Training: mean and biased variance of the batch; when
// running_mean / running_var ([C]) are defined they are updated in place with
// the unbiased variance, as PyTorch. Inference: the running statistics, which
// must then be defined. Throws dml::Error on shape mismatches, on missing
// running statistics in inference, and in training when a channel has a
// single value (N * H * W == 1).
template <class T, class D>
Tensor<T, D> batch_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                        Tensor<T, D> running_mean, Tensor<T, D> running_var, BatchNormOptions opt = {}) {
  static_assert(Real<T>, "batch_norm needs float or double tensors");
  DML_CHECK(x.defined() && x.rank() >= 2 && x.rank() <= 4, "batch_norm: input must have rank 2, 3 or 4, got ",
            detail::shape_or_undefined(x));
  const std::int64_t n = x.dim(0), c = x.dim(1), s = c > 0 && n > 0 ? x.numel() / (n * c) : 0;
  auto expect_c = [&](const Tensor<T, D>& t, const char* what) {
    DML_CHECK(!t.defined() || (t.rank() == 1 && t.dim(0) == c), "batch_norm: ", what, " of shape ", t.shape().str(),
              " does not match the ", c, " channels of input ", x.shape().str());
  };
  expect_c(weight, "weight");
  expect_c(bias, "bias");
  expect_c(running_mean, "running_mean");
  expect_c(running_var, "running_var");
  DML_CHECK(running_mean.defined() == running_var.defined(),
            "batch_norm: running_mean and running_var must be both given or both absent");
  DML_CHECK(opt.training || running_mean.defined(), "batch_norm: inference needs running statistics");
  DML_CHECK(!opt.training || n * s > 1, "batch_norm: expected more than 1 value per channel when training, got input ",
            "of shape ", x.shape().str());
  DML_CHECK(opt.eps >= 0, "batch_norm: eps must be non-negative, got ", opt.eps);

  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Tensor<T, D> mean = Tensor<T, D>::empty(Shape{c}), invstd = Tensor<T, D>::empty(Shape{c});
  const T* w = weight.defined() ? weight.data() : nullptr;
  const T* b = bias.defined() ? bias.data() : nullptr;
  if (opt.training)
    Backend<D>::batch_norm_train(x.data(), w, b, out.data(), mean.data(), invstd.data(),
                                 running_mean.defined() ? running_mean.data() : nullptr,
                                 running_var.defined() ? running_var.data() : nullptr, n, c, s, opt.momentum, opt.eps);
  else
    Backend<D>::batch_norm_eval(x.data(), w, b, running_mean.data(), running_var.data(), out.data(), mean.data(),
                                invstd.data(), n, c, s, opt.eps);
  if (detail::tracking_any({&x, &weight, &bias}))
    detail::record(out, "batch_norm", {&x, &weight, &bias},
                   [xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor<T, D>(), mean, invstd, n, c, s,
                    batch = opt.training](const Tensor<T, D>& gy, Needs need) {
                     Tensor<T, D> gx, gw, gb;
                     if (need[0]) gx = Tensor<T, D>::empty(xs.shape());
                     if (need[1]) gw = Tensor<T, D>::empty(Shape{c});
                     if (need[2]) gb = Tensor<T, D>::empty(Shape{c});
                     Backend<D>::batch_norm_backward(gy.data(), xs.data(), ws.defined() ? ws.data() : nullptr,
                                                     mean.data(), invstd.data(), need[0] ? gx.data() : nullptr,
                                                     need[1] ? gw.data() : nullptr, need[2] ? gb.data() : nullptr, n, c,
                                                     s, batch);
                     return detail::Grads<T, D>{gx, gw, gb};
                   });
  return out;
}

}  // namespace dml::ops
