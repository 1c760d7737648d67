// dml/backend/cuda/batchnorm.cuh: batch normalisation over [n, c, s] (s = h * w
// for BatchNorm2d, 1 or L for BatchNorm1d), with the CPU backend's semantics.
//
// Per-channel sums run one block per channel in double for any T, as the CPU
// does, in an order fixed by the shapes (block-stride partials, then a block
// sum): deterministic, though not the CPU's sequential order. What follows the
// sums (kernels/batchnorm.hpp's epilogues, then the elementwise pass over all
// n * c * s values) is the CPU's code.
#pragma once

#include <cstdint>

#include "../kernels/batchnorm.hpp"
#include "launch.cuh"
#include "memory.cuh"

namespace dml::cuda {
namespace detail {

inline unsigned bn_grid(std::int64_t channels) { return static_cast<unsigned>(channels < 65535 ? channels : 65535); }

// Element k of channel ch in [n, c, s]: image k / s, position k % s.
DML_HD std::int64_t bn_index(std::int64_t k, std::int64_t ch, std::int64_t c, std::int64_t s) {
  return ((k / s) * c + ch) * s + k % s;
}

// Batch mean and sum of squared deviations per channel (two passes, in
// double), handed to the epilogue (BnTrainEpilogue: statistics, running
// statistics, coef; BnStoreSums: what synchronised batch norm all-reduces).
template <class T, class E>
__global__ void bn_train_stats_kernel(const T* x, E epilogue, std::int64_t n, std::int64_t c, std::int64_t s) {
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
    if (threadIdx.x == 0) epilogue(ch, mean, ss);
  }
}

// Per channel: sum gy and sum gy * (x - mean) (in double), handed to the
// epilogue (gbeta, ggamma and the coefficients of gx).
template <class T, class E>
__global__ void bn_backward_stats_kernel(const T* gy, const T* x, const T* mean, E epilogue,
                                         std::int64_t n, std::int64_t c, std::int64_t s) {
  __shared__ double scratch[kWarp];
  const std::int64_t m = n * s;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double mu = double(mean[ch]);
    double sg = 0, sgx = 0;
    for (std::int64_t k = threadIdx.x; k < m; k += blockDim.x) {
      const std::int64_t i = bn_index(k, ch, c, s);
      sg += double(gy[i]);
      sgx += double(gy[i]) * (double(x[i]) - mu);
    }
    const double sum_g = block_sum(sg, scratch);
    const double sum_gxc = block_sum(sgx, scratch);
    if (threadIdx.x == 0) epilogue(ch, sum_g, sum_gxc);
  }
}

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
    const kernels::BnTrainEpilogue<T> epilogue{gamma,      beta, save_mean, save_invstd, running_mean, running_var,
                                               coef.get(), c,    n * s,     momentum,    eps};
    detail::bn_train_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(x, epilogue, n, c, s);
    DML_CUDA_CHECK_LAUNCH();
    Launch::for_each_2d(n * c, s, kernels::BnApply<T>{x, coef.get(), y, c, s});
  }

  // Inference: normalise with the given statistics (the running ones). Also
  // writes save_mean = mean and save_invstd = 1 / sqrt(var + eps) for the backward.
  template <class T>
  static void batch_norm_eval(const T* x, const T* gamma, const T* beta, const T* mean, const T* var, T* y,
                              T* save_mean, T* save_invstd, std::int64_t n, std::int64_t c, std::int64_t s,
                              double eps) {
    if (c <= 0) return;
    DeviceBuffer<T> coef(static_cast<std::size_t>(2 * c));
    Launch::for_each(c, kernels::BnEvalStats<T>{gamma, beta, mean, var, save_mean, save_invstd, coef.get(), c, eps});
    Launch::for_each_2d(n * c, s, kernels::BnApply<T>{x, coef.get(), y, c, s});
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
    const kernels::BnBackwardEpilogue<T> epilogue{gamma, invstd, ggamma, gbeta, coef.get(), c, n * s, batch_stats};
    detail::bn_backward_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(gy, x, mean, epilogue, n,
                                                                                            c, s);
    DML_CUDA_CHECK_LAUNCH();
    if (!gx) return;
    if (batch_stats)
      Launch::for_each_2d(n * c, s, kernels::BnBackwardApply<T, true>{gy, x, mean, coef.get(), gx, c, s});
    else
      Launch::for_each_2d(n * c, s, kernels::BnBackwardApply<T, false>{gy, x, mean, coef.get(), gx, c, s});
  }

  // Per channel of x [n, c, s]: epilogue(ch, mean, ss), the mean and the sum of
  // squared deviations of its n * s values (in double, as batch_norm_train).
  // For synchronised batch normalisation, which combines the ranks' sums.
  template <class T, class E>
  static void batch_norm_sums(const T* x, std::int64_t n, std::int64_t c, std::int64_t s, E epilogue) {
    if (c <= 0 || n * s <= 0) return;
    detail::bn_train_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(x, epilogue, n, c, s);
    DML_CUDA_CHECK_LAUNCH();
  }

  // Per channel: epilogue(ch, sum gy, sum gy * (x - mean)) in double, as
  // batch_norm_backward's sums (for synchronised batch normalisation).
  template <class T, class E>
  static void batch_norm_backward_sums(const T* gy, const T* x, const T* mean, std::int64_t n, std::int64_t c,
                                       std::int64_t s, E epilogue) {
    if (c <= 0) return;
    detail::bn_backward_stats_kernel<<<detail::bn_grid(c), detail::kBlock, 0, stream()>>>(gy, x, mean, epilogue, n,
                                                                                            c, s);
    DML_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace dml::cuda
