// dml/backend/cpu/batchnorm.hpp: batch normalisation over [n, c, s] (s = h * w
// for BatchNorm2d, 1 or L for BatchNorm1d) on the host. One channel per task:
// its sums run in double for any T, in a fixed order (channel_sum), so results
// do not depend on threads; the epilogue and the elementwise pass are
// kernels/batchnorm.hpp's, run on the channel's planes while they are still in cache.
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/batchnorm.hpp"
#include "../kernels/index.hpp"
#include "parallel.hpp"

namespace dml::cpu {

namespace bn_detail {

// sum over planes b < n of sum over q < s of f(b, q), in double, for the
// planes of one channel. kLanes independent partial sums (lane = q mod kLanes,
// plane by plane, combined pairwise at the end) break the one long chain of
// dependent additions, so the loop vectorises; the order is fixed, so the sum
// is the same for any number of threads. Planes shorter than kLanes spread
// over the lanes by plane instead.
template <class F>
double channel_sum(std::int64_t n, std::int64_t s, F&& f) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  if (s >= kLanes) {
    for (std::int64_t b = 0; b < n; ++b) {
      std::int64_t q = 0;
      for (; q + kLanes <= s; q += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += f(b, q + l);
      for (int l = 0; q < s; ++q, ++l) acc[l] += f(b, q);
    }
  } else {
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t q = 0; q < s; ++q) acc[b % kLanes] += f(b, q);
  }
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// The forward sums of channel ch of x [n, c, s]: its mean and the sum of
// squared deviations from it (two passes in double, channel_sum's order).
struct ForwardSums {
  double mean, ss;
};
template <class T>
ForwardSums forward_sums(const T* x, std::int64_t n, std::int64_t c, std::int64_t s, std::int64_t ch) {
  const T* xc = x + ch * s;  // plane b of the channel: xc + b * c * s
  const std::int64_t stride = c * s;
  const double mean =
      channel_sum(n, s, [&](std::int64_t b, std::int64_t q) { return double(xc[b * stride + q]); }) / double(n * s);
  const double ss = channel_sum(n, s, [&](std::int64_t b, std::int64_t q) {
    const double d = double(xc[b * stride + q]) - mean;
    return d * d;
  });
  return {mean, ss};
}

// The backward sums of channel ch: sum gy and sum gy * (x - mean[ch]).
struct BackwardSums {
  double g, gxc;
};
template <class T>
BackwardSums backward_sums(const T* gy, const T* x, const T* mean, std::int64_t n, std::int64_t c, std::int64_t s,
                           std::int64_t ch) {
  const double mu = double(mean[ch]);
  const T* xc = x + ch * s;
  const T* gc = gy + ch * s;
  const std::int64_t stride = c * s;
  const double g = channel_sum(n, s, [&](std::int64_t b, std::int64_t q) { return double(gc[b * stride + q]); });
  const double gxc = channel_sum(n, s, [&](std::int64_t b, std::int64_t q) {
    return double(gc[b * stride + q]) * (double(xc[b * stride + q]) - mu);
  });
  return {g, gxc};
}

}  // namespace bn_detail

struct BatchNorm {
  // Training step: per-channel batch mean and biased variance normalise x;
  // y = gamma * xhat + beta (gamma/beta may be null: 1 and 0). save_mean and
  // save_invstd receive mean and 1 / sqrt(var + eps). When running_mean and
  // running_var are non-null they move by `momentum` towards the batch mean and
  // the unbiased batch variance (PyTorch's update). Needs n * s > 1.
  template <class T>
  static void batch_norm_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                               T* running_mean, T* running_var, std::int64_t n, std::int64_t c, std::int64_t s,
                               double momentum, double eps) {
    const std::int64_t m = n * s;
    std::vector<T> coef(static_cast<std::size_t>(2 * c));
    const kernels::BnTrainEpilogue<T> epilogue{gamma,       beta, save_mean, save_invstd, running_mean, running_var,
                                               coef.data(), c,    m,         momentum,    eps};
    const kernels::BnApply<T> apply{x, coef.data(), y, c, s};
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const auto sums = bn_detail::forward_sums(x, n, c, s, ch);
          epilogue(ch, sums.mean, sums.ss);
          for (std::int64_t b = 0; b < n; ++b) kernels::run_cols(apply, b * c + ch, 0, s);
        },
        3 * m);
  }

  // Inference: normalise with the given statistics (the running ones). Also
  // writes save_mean = mean and save_invstd = 1 / sqrt(var + eps) for the backward.
  template <class T>
  static void batch_norm_eval(const T* x, const T* gamma, const T* beta, const T* mean, const T* var, T* y,
                              T* save_mean, T* save_invstd, std::int64_t n, std::int64_t c, std::int64_t s,
                              double eps) {
    std::vector<T> coef(static_cast<std::size_t>(2 * c));
    const kernels::BnEvalStats<T> stats{gamma, beta, mean, var, save_mean, save_invstd, coef.data(), c, eps};
    const kernels::BnApply<T> apply{x, coef.data(), y, c, s};
    parallel_for(
        c,
        [&](std::int64_t ch) {
          stats(ch);
          for (std::int64_t b = 0; b < n; ++b) kernels::run_cols(apply, b * c + ch, 0, s);
        },
        n * s);
  }

  // Gradients given gy. batch_stats: the statistics were the batch's own (so
  // they depend on x); otherwise they were constants. gx, ggamma, gbeta may
  // be null; the others are overwritten.
  template <class T>
  static void batch_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* invstd, T* gx,
                                  T* ggamma, T* gbeta, std::int64_t n, std::int64_t c, std::int64_t s,
                                  bool batch_stats) {
    if (batch_stats)
      backward<T, true>(gy, x, gamma, mean, invstd, gx, ggamma, gbeta, n, c, s);
    else
      backward<T, false>(gy, x, gamma, mean, invstd, gx, ggamma, gbeta, n, c, s);
  }

  // Per channel of x [n, c, s]: epilogue(ch, mean, ss), the mean and the sum of
  // squared deviations of its n * s values (two passes in double, summed as
  // batch_norm_train does). For synchronised batch normalisation, which
  // combines the ranks' sums before normalising.
  template <class T, class E>
  static void batch_norm_sums(const T* x, std::int64_t n, std::int64_t c, std::int64_t s, E epilogue) {
    const std::int64_t m = n * s;
    if (c <= 0 || m <= 0) return;
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const auto sums = bn_detail::forward_sums(x, n, c, s, ch);
          epilogue(ch, sums.mean, sums.ss);
        },
        2 * m);
  }

  // Per channel: epilogue(ch, sum gy, sum gy * (x - mean)) in double, summed
  // as batch_norm_backward does (for synchronised batch normalisation).
  template <class T, class E>
  static void batch_norm_backward_sums(const T* gy, const T* x, const T* mean, std::int64_t n, std::int64_t c,
                                       std::int64_t s, E epilogue) {
    if (c <= 0) return;
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const auto sums = bn_detail::backward_sums(gy, x, mean, n, c, s, ch);
          epilogue(ch, sums.g, sums.gxc);
        },
        2 * n * s);
  }

 private:
  template <class T, bool kBatchStats>
  static void backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* invstd, T* gx, T* ggamma,
                       T* gbeta, std::int64_t n, std::int64_t c, std::int64_t s) {
    const std::int64_t m = n * s;
    std::vector<T> coef(static_cast<std::size_t>(3 * c));
    const kernels::BnBackwardEpilogue<T> epilogue{gamma, invstd, ggamma, gbeta, coef.data(), c, m, kBatchStats};
    const kernels::BnBackwardApply<T, kBatchStats> apply{gy, x, mean, coef.data(), gx, c, s};
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const auto sums = bn_detail::backward_sums(gy, x, mean, n, c, s, ch);
          epilogue(ch, sums.g, sums.gxc);
          if (gx)
            for (std::int64_t b = 0; b < n; ++b) kernels::run_cols(apply, b * c + ch, 0, s);
        },
        3 * m);
  }
};

}  // namespace dml::cpu
