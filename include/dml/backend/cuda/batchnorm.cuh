// dml/backend/cuda/batchnorm.cuh: batch normalisation over [n, c, s] (s = h * w
// for BatchNorm2d, 1 or L for BatchNorm1d), with the CPU backend's semantics.
//
// Per-channel statistics run one block per channel and sum in double for any
// T, as the CPU does, in an order fixed by the shapes (block-stride partials,
// then a block sum): deterministic, though not the CPU's sequential order.
// The per-channel affine coefficients are rounded to T exactly as on the CPU
// and applied by an elementwise kernel over all n * c * s values.
#pragma once

#include <cstdint>

#include "../math.hpp"
#include "launch.cuh"
#include "memory.cuh"

namespace dml::cuda {
namespace detail {

inline unsigned bn_grid(std::int64_t channels) { return static_cast<unsigned>(channels < 65535 ? channels : 65535); }

// Element k of channel ch in [n, c, s]: image k / s, position k % s.
DML_HD std::int64_t bn_index(std::int64_t k, std::int64_t ch, std::int64_t c, std::int64_t s) {
  return ((k / s) * c + ch) * s + k % s;
}

// Batch mean and biased variance per channel (two passes, in double); writes
// save_mean, save_invstd, the running statistics (when non-null) and the
// affine coefficients coef[ch] = scale, coef[c + ch] = shift.
template <class T>
__global__ void bn_train_stats_kernel(const T* x, const T* gamma, const T* beta, T* save_mean, T* save_invstd,
                                      T* running_mean, T* running_var, T* coef, std::int64_t n, std::int64_t c,
                                      std::int64_t s, double momentum, double eps) {
  __shared__ double scratch[kWarp];
  const std::int64_t m = n * s;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    double sum = 0;
    for (std::int64_t k = threadIdx.x; k < m; k += blockDim.x) sum += double(x[bn_index(k, ch, c, s)]);
    const double mean = block_sum(sum, scratch) / double(m);
    double ss = 0;
    for (std::int64_t k = threadIdx.x; k < m; k += blockDim.x) {
      const double d = double(x[bn_index(k, ch, c, s)]) - mean;
      ss += d * d;
    }
    ss = block_sum(ss, scratch);
    if (threadIdx.x == 0) {
      const double var = ss / double(m);
      const double invstd = 1.0 / math::sqrt(var + eps);
      save_mean[ch] = T(mean);
      save_invstd[ch] = T(invstd);
      if (running_mean) running_mean[ch] = T((1 - momentum) * double(running_mean[ch]) + momentum * mean);
      if (running_var)
        running_var[ch] = T((1 - momentum) * double(running_var[ch]) + momentum * (m > 1 ? ss / double(m - 1) : var));
      const double scale = (gamma ? double(gamma[ch]) : 1.0) * invstd;
      coef[ch] = T(scale);
      coef[c + ch] = T((beta ? double(beta[ch]) : 0.0) - mean * scale);
    }
  }
}

// Inference statistics of channel ch: the given mean and var.
template <class T>
struct BnEvalStatsOp {
  const T* gamma;
  const T* beta;
  const T* mean;
  const T* var;
  T* save_mean;
  T* save_invstd;
  T* coef;
  std::int64_t c;
  double eps;
  DML_HD void operator()(std::int64_t ch) const {
    const double mu = double(mean[ch]);
    const double invstd = 1.0 / math::sqrt(double(var[ch]) + eps);
    save_mean[ch] = T(mu);
    save_invstd[ch] = T(invstd);
    const double scale = (gamma ? double(gamma[ch]) : 1.0) * invstd;
    coef[ch] = T(scale);
    coef[c + ch] = T((beta ? double(beta[ch]) : 0.0) - mu * scale);
  }
};

// y = x * scale[ch] + shift[ch]
template <class T>
struct BnApplyOp {
  const T* x;
  const T* coef;
  T* y;
  std::int64_t c, s;
  DML_HD void operator()(std::int64_t i) const {
    const std::int64_t ch = (i / s) % c;
    y[i] = x[i] * coef[ch] + coef[c + ch];
  }
};

// Per channel: sum gy and sum gy * xhat (in double); writes gbeta, ggamma
// (when non-null) and the coefficients of gx into coef[0..3c):
//   batch statistics:  gx = a gy + cx (x - mean) + b0    (a, b0, cx)
//   fixed statistics:  gx = a gy                         (a)
template <class T>
__global__ void bn_backward_stats_kernel(const T* gy, const T* x, const T* gamma, const T* mean, const T* invstd,
                                         T* ggamma, T* gbeta, T* coef, std::int64_t n, std::int64_t c, std::int64_t s,
                                         bool batch_stats) {
  __shared__ double scratch[kWarp];
  const std::int64_t m = n * s;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double mu = double(mean[ch]), is = double(invstd[ch]);
    double sg = 0, sgx = 0;
    for (std::int64_t k = threadIdx.x; k < m; k += blockDim.x) {
      const std::int64_t i = bn_index(k, ch, c, s);
      sg += double(gy[i]);
      sgx += double(gy[i]) * (double(x[i]) - mu);
    }
    const double sum_g = block_sum(sg, scratch);
    const double sum_gx = block_sum(sgx, scratch) * is;
    if (threadIdx.x == 0) {
      if (gbeta) gbeta[ch] = T(sum_g);
      if (ggamma) ggamma[ch] = T(sum_gx);
      const double k = (gamma ? double(gamma[ch]) : 1.0) * is;
      coef[ch] = T(k);
      if (batch_stats) {
        const double mg = sum_g / double(m), mgx = sum_gx / double(m);
        coef[c + ch] = T(-k * mg);
        coef[2 * c + ch] = T(-k * is * mgx);
      }
    }
  }
}

template <class T>
struct BnBackwardApplyOp {
  const T* gy;
  const T* x;
  const T* mean;
  const T* coef;
  T* gx;
  std::int64_t c, s;
  bool batch_stats;
  DML_HD void operator()(std::int64_t i) const {
    const std::int64_t ch = (i / s) % c;
    if (!batch_stats) {
      gx[i] = gy[i] * coef[ch];
      return;
    }
    gx[i] = coef[ch] * gy[i] + coef[2 * c + ch] * (x[i] - mean[ch]) + coef[c + ch];
  }
};

}  // namespace detail

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
    if (c <= 0 || n * s <= 0) return;
    DeviceBuffer<T> coef(static_cast<std::size_t>(2 * c));
    detail::bn_train_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(
        x, gamma, beta, save_mean, save_invstd, running_mean, running_var, coef.get(), n, c, s, momentum, eps);
    DML_CUDA_CHECK_LAUNCH();
    detail::for_each(n * c * s, detail::BnApplyOp<T>{x, coef.get(), y, c, s});
  }

  // Inference: normalise with the given statistics (the running ones). Also
  // writes save_mean = mean and save_invstd = 1 / sqrt(var + eps) for the backward.
  template <class T>
  static void batch_norm_eval(const T* x, const T* gamma, const T* beta, const T* mean, const T* var, T* y,
                              T* save_mean, T* save_invstd, std::int64_t n, std::int64_t c, std::int64_t s,
                              double eps) {
    if (c <= 0) return;
    DeviceBuffer<T> coef(static_cast<std::size_t>(2 * c));
    detail::for_each(c, detail::BnEvalStatsOp<T>{gamma, beta, mean, var, save_mean, save_invstd, coef.get(), c, eps});
    if (n * s > 0) detail::for_each(n * c * s, detail::BnApplyOp<T>{x, coef.get(), y, c, s});
  }

  // Gradients given gy. batch_stats: the statistics were the batch's own (so
  // they depend on x); otherwise they were constants. gx, ggamma, gbeta may
  // be null; the others are overwritten.
  template <class T>
  static void batch_norm_backward(const T* gy, const T* x, const T* gamma, const T* mean, const T* invstd, T* gx,
                                  T* ggamma, T* gbeta, std::int64_t n, std::int64_t c, std::int64_t s,
                                  bool batch_stats) {
    if (c <= 0) return;
    DeviceBuffer<T> coef(static_cast<std::size_t>(3 * c));
    detail::bn_backward_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(
        gy, x, gamma, mean, invstd, ggamma, gbeta, coef.get(), n, c, s, batch_stats);
    DML_CUDA_CHECK_LAUNCH();
    if (gx && n * s > 0)
      detail::for_each(n * c * s, detail::BnBackwardApplyOp<T>{gy, x, mean, coef.get(), gx, c, s, batch_stats});
  }
};

}  // namespace dml::cuda
