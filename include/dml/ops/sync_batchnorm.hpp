// dml/ops/sync_batchnorm.hpp: batch normalisation with statistics over the
// batches of every rank of a Collective (PyTorch's SyncBatchNorm).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

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
// same on every rank. Host tensors only for now. Collective: every rank calls
// it for the same layer with the same channel count. Throws dml::Error as
// batch_norm does, and when the ranks' batches together hold one value per
// channel or fewer.
template <class T, class D>
Tensor<T, D> sync_batch_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                             Tensor<T, D> running_mean, Tensor<T, D> running_var, Collective& comm,
                             BatchNormOptions opt = {}) {
  static_assert(std::is_same_v<D, Cpu>, "sync_batch_norm: host tensors only (the NCCL path is not written yet)");
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

  // count, sum per channel, sum of squares per channel
  std::vector<double> stats(static_cast<std::size_t>(2 * c + 1), 0.0);
  const T* xp = x.data();
  stats[0] = static_cast<double>(n * s);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const T* row = xp + (i * c + ch) * s;
      double s1 = 0, s2 = 0;
      for (std::int64_t k = 0; k < s; ++k) {
        const double v = static_cast<double>(row[k]);
        s1 += v;
        s2 += v * v;
      }
      stats[static_cast<std::size_t>(1 + ch)] += s1;
      stats[static_cast<std::size_t>(1 + c + ch)] += s2;
    }
  comm.all_reduce_sum(std::span<double>(stats));
  const double m = stats[0];
  DML_CHECK(m > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got ", m,
            " (this rank's input ", x.shape().str(), ")");

  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Tensor<T, D> mean = Tensor<T, D>::empty(Shape{c}), invstd = Tensor<T, D>::empty(Shape{c});
  const T* w = weight.defined() ? weight.data() : nullptr;
  const T* b = bias.defined() ? bias.data() : nullptr;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const double mu = stats[static_cast<std::size_t>(1 + ch)] / m;
    const double var = std::max(0.0, stats[static_cast<std::size_t>(1 + c + ch)] / m - mu * mu);
    mean.data()[ch] = static_cast<T>(mu);
    invstd.data()[ch] = static_cast<T>(1.0 / std::sqrt(var + opt.eps));
    if (running_mean.defined()) {
      T* rm = running_mean.data();
      T* rv = running_var.data();
      rm[ch] = static_cast<T>((1 - opt.momentum) * static_cast<double>(rm[ch]) + opt.momentum * mu);
      rv[ch] = static_cast<T>((1 - opt.momentum) * static_cast<double>(rv[ch]) + opt.momentum * var * m / (m - 1));
    }
  }
  T* yp = out.data();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const T mu = mean.data()[ch], is = invstd.data()[ch];
      const T scale = w ? w[ch] * is : is, shift = b ? b[ch] : T(0);
      const T* row = xp + (i * c + ch) * s;
      T* dst = yp + (i * c + ch) * s;
      for (std::int64_t k = 0; k < s; ++k) dst[k] = (row[k] - mu) * scale + shift;
    }

  if (detail::tracking_any({&x, &weight, &bias}))
    detail::record(out, "sync_batch_norm", {&x, &weight, &bias},
                   [xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor<T, D>(), mean, invstd, n, c, s,
                    m, comm = &comm](const Tensor<T, D>& gy, Needs need) {
                     // this rank's sums of gy and gy * x_hat per channel; the global ones for gx
                     std::vector<double> sums(static_cast<std::size_t>(2 * c), 0.0);
                     const T* g = gy.data();
                     const T* xv = xs.data();
                     for (std::int64_t i = 0; i < n; ++i)
                       for (std::int64_t ch = 0; ch < c; ++ch) {
                         const double mu = mean.data()[ch], is = invstd.data()[ch];
                         const T* gr = g + (i * c + ch) * s;
                         const T* xr = xv + (i * c + ch) * s;
                         double a = 0, bsum = 0;
                         for (std::int64_t k = 0; k < s; ++k) {
                           a += static_cast<double>(gr[k]);
                           bsum += static_cast<double>(gr[k]) * (static_cast<double>(xr[k]) - mu) * is;
                         }
                         sums[static_cast<std::size_t>(ch)] += a;
                         sums[static_cast<std::size_t>(c + ch)] += bsum;
                       }
                     Tensor<T, D> gx, gw, gb;
                     if (need[1]) {
                       gw = Tensor<T, D>::empty(Shape{c});
                       for (std::int64_t ch = 0; ch < c; ++ch) gw.data()[ch] = static_cast<T>(sums[c + ch]);
                     }
                     if (need[2]) {
                       gb = Tensor<T, D>::empty(Shape{c});
                       for (std::int64_t ch = 0; ch < c; ++ch) gb.data()[ch] = static_cast<T>(sums[ch]);
                     }
                     // Collective on every rank whether or not x needs a gradient here, so
                     // that the ranks stay in step.
                     for (double& v : sums) v *= static_cast<double>(n);
                     comm->all_reduce_sum(std::span<double>(sums));
                     for (double& v : sums) v /= static_cast<double>(n);
                     if (need[0]) {
                       gx = Tensor<T, D>::empty(xs.shape());
                       T* gxp = gx.data();
                       for (std::int64_t i = 0; i < n; ++i)
                         for (std::int64_t ch = 0; ch < c; ++ch) {
                           const double mu = mean.data()[ch], is = invstd.data()[ch];
                           const double wv = ws.defined() ? static_cast<double>(ws.data()[ch]) : 1.0;
                           const double mg = sums[static_cast<std::size_t>(ch)] / m;
                           const double mgx = sums[static_cast<std::size_t>(c + ch)] / m;
                           const T* gr = g + (i * c + ch) * s;
                           const T* xr = xv + (i * c + ch) * s;
                           T* dst = gxp + (i * c + ch) * s;
                           for (std::int64_t k = 0; k < s; ++k) {
                             const double xhat = (static_cast<double>(xr[k]) - mu) * is;
                             dst[k] = static_cast<T>(wv * is * (static_cast<double>(gr[k]) - mg - xhat * mgx));
                           }
                         }
                     }
                     return detail::Grads<T, D>{gx, gw, gb};
                   });
  return out;
}

}  // namespace dml::ops
