// dml/ops/sync_batchnorm.hpp: batch normalisation with statistics over the
// batches of every rank of a Collective (PyTorch's SyncBatchNorm).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../backend/kernels/batchnorm.hpp"
#include "../core/collective.hpp"
#include "batchnorm.hpp"
#include "common.hpp"
#include "tracking.hpp"

namespace dml::ops {

// Training-mode batch_norm whose mean and (biased) variance are those of the
// union of all ranks' batches: the forward pass all-reduces each channel's
// count, sum and sum of squares (2C + 1 values), the backward pass the sums of
// gy and gy * x_hat (2C values), each rank's weighted by its rows N_r = x.dim(0)
// and divided by them again after the sum. That is GradientAverager's
// convention (train/data_parallel.hpp): each rank's loss is the mean over its
// rows and its gradients are weighted by N_r / N, so x's gradient here is
// (N / N_r) times that of the global batch's mean loss, exactly, also when the
// ranks' batches differ in size (with equal sizes it is PyTorch's
// SyncBatchNorm). weight and bias get this rank's share of their gradient, as
// in batch_norm. running_mean / running_var, when defined,
// are updated in place from the global statistics (unbiased variance), the
// same on every rank. Host or device tensors (device memory goes to the
// Collective as it is when it takes_device_memory(), through the host
// otherwise). Collective: every rank calls it for the same layer with the same
// channel count. Throws dml::Error as
// batch_norm does, and when the ranks' batches together hold one value per
// channel or fewer.
template <class T, class D>
Tensor<T, D> sync_batch_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                             Tensor<T, D> running_mean, Tensor<T, D> running_var, Collective& comm,
                             BatchNormOptions opt = {}) {
  static_assert(Real<T>, "sync_batch_norm needs float or double tensors");
  DML_CHECK(x.defined() && x.rank() >= 2 && x.rank() <= 4, "sync_batch_norm: input must have rank 2, 3 or 4, got ",
            detail::shape_or_undefined(x));
  const std::int64_t n = x.dim(0), c = x.dim(1), s = c > 0 && n > 0 ? x.numel() / (n * c) : 0;
  auto expect_c = [&](const Tensor<T, D>& t, const char* what) {
    DML_CHECK(!t.defined() || (t.rank() == 1 && t.dim(0) == c), "sync_batch_norm: ", what, " of shape ",
              t.shape().str(), " does not match the ", c, " channels of input ", x.shape().str());
  };
  expect_c(weight, "weight");
  expect_c(bias, "bias");
  expect_c(running_mean, "running_mean");
  expect_c(running_var, "running_var");
  DML_CHECK(running_mean.defined() == running_var.defined(),
            "sync_batch_norm: running_mean and running_var must be both given or both absent");

  // This rank's per-channel sums (Backend<D>::batch_norm_sums: two passes in
  // double), all-reduced, then BatchNorm's epilogue and apply with the global
  // statistics: the kernels of backend/kernels/batchnorm.hpp, on either device.
  std::vector<double> count = {static_cast<double>(n * s)};
  comm.all_reduce_sum(std::span<double>(count));
  const auto m = static_cast<std::int64_t>(count[0]);
  DML_CHECK(m > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got ", m,
            " (this rank's input ", x.shape().str(), ")");
  Tensor<double, D> sums = Tensor<double, D>::zeros(Shape{2 * c});
  Backend<D>::batch_norm_sums(x.data(), n, c, s, kernels::BnStoreSums{sums.data(), c, n * s});
  all_reduce_sum_on<D>(comm, sums.data(), static_cast<std::size_t>(2 * c));

  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Tensor<T, D> mean = Tensor<T, D>::empty(Shape{c}), invstd = Tensor<T, D>::empty(Shape{c});
  Tensor<T, D> coef = Tensor<T, D>::empty(Shape{2 * c});
  const T* w = weight.defined() ? weight.data() : nullptr;
  const T* b = bias.defined() ? bias.data() : nullptr;
  const kernels::BnTrainEpilogue<T> epilogue{w,
                                             b,
                                             mean.data(),
                                             invstd.data(),
                                             running_mean.defined() ? running_mean.data() : nullptr,
                                             running_var.defined() ? running_var.data() : nullptr,
                                             coef.data(),
                                             c,
                                             m,
                                             opt.momentum,
                                             opt.eps};
  Backend<D>::for_each(c, kernels::BnSyncStats<T>{sums.data(), epilogue});
  if (n * s > 0) Backend<D>::for_each_2d(n * c, s, kernels::BnApply<T>{x.data(), coef.data(), out.data(), c, s});

  if (detail::tracking_any({&x, &weight, &bias}))
    detail::record(out, "sync_batch_norm", {&x, &weight, &bias},
                   [xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor<T, D>(), mean, invstd, n, c, s,
                    m, comm = &comm](const Tensor<T, D>& gy, Needs need) {
                     // This rank's sums of gy and gy * x_hat per channel (its gbeta and
                     // ggamma), times n for the all-reduce, divided by n again in the
                     // coefficients of gx.
                     Tensor<T, D> gx, gw, gb;
                     if (need[1]) gw = Tensor<T, D>::empty(Shape{c});
                     if (need[2]) gb = Tensor<T, D>::empty(Shape{c});
                     Tensor<double, D> sums = Tensor<double, D>::zeros(Shape{2 * c});
                     Backend<D>::batch_norm_backward_sums(
                         gy.data(), xs.data(), mean.data(), n, c, s,
                         kernels::BnStoreBackwardSums<T>{invstd.data(), gw.defined() ? gw.data() : nullptr,
                                                         gb.defined() ? gb.data() : nullptr, sums.data(), c,
                                                         static_cast<double>(n)});
                     // Collective on every rank whether or not x needs a gradient here, so
                     // that the ranks stay in step.
                     all_reduce_sum_on<D>(*comm, sums.data(), static_cast<std::size_t>(2 * c));
                     if (need[0]) {
                       gx = Tensor<T, D>::empty(xs.shape());
                       if (n * s > 0) {
                         Tensor<T, D> coef = Tensor<T, D>::empty(Shape{3 * c});
                         Backend<D>::for_each(c, kernels::BnSyncBackwardCoef<T>{
                                                     sums.data(), ws.defined() ? ws.data() : nullptr, invstd.data(),
                                                     coef.data(), c, m, static_cast<double>(n)});
                         Backend<D>::for_each_2d(n * c, s,
                                                 kernels::BnBackwardApply<T, true>{gy.data(), xs.data(), mean.data(),
                                                                                   coef.data(), gx.data(), c, s});
                       }
                     }
                     return detail::Grads<T, D>{gx, gw, gb};
                   });
  return out;
}

}  // namespace dml::ops
