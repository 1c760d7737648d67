// dml/backend/cpu/batchnorm.hpp: batch normalisation over [n, c, s] (s = h * w
// for BatchNorm2d, 1 or L for BatchNorm1d). One channel per task; sums run in
// double for any T, in a fixed order, so results do not depend on threads.
#pragma once

#include <cmath>
#include <cstdint>

#include "parallel.hpp"

namespace dml::cpu {

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
    parallel_for(
        c,
        [&](std::int64_t ch) {
          double sum = 0;
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) sum += double(xp[q]);
          }
          const double mean = sum / double(m);
          double ss = 0;
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) {
              double d = double(xp[q]) - mean;
              ss += d * d;
            }
          }
          const double var = ss / double(m);
          const double invstd = 1.0 / std::sqrt(var + eps);
          save_mean[ch] = T(mean);
          save_invstd[ch] = T(invstd);
          if (running_mean) running_mean[ch] = T((1 - momentum) * double(running_mean[ch]) + momentum * mean);
          if (running_var)
            running_var[ch] =
                T((1 - momentum) * double(running_var[ch]) + momentum * (m > 1 ? ss / double(m - 1) : var));
          const double scale = (gamma ? double(gamma[ch]) : 1.0) * invstd;
          const double shift = (beta ? double(beta[ch]) : 0.0) - mean * scale;
          const T sc = T(scale), sh = T(shift);
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            T* yp = y + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) yp[q] = xp[q] * sc + sh;
          }
        },
        3 * m);
  }

  // Inference: normalise with the given statistics (the running ones). Also
  // writes save_mean = mean and save_invstd = 1 / sqrt(var + eps) for the backward.
  template <class T>
  static void batch_norm_eval(const T* x, const T* gamma, const T* beta, const T* mean, const T* var, T* y,
                              T* save_mean, T* save_invstd, std::int64_t n, std::int64_t c, std::int64_t s,
                              double eps) {
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const double mu = double(mean[ch]);
          const double invstd = 1.0 / std::sqrt(double(var[ch]) + eps);
          save_mean[ch] = T(mu);
          save_invstd[ch] = T(invstd);
          const double scale = (gamma ? double(gamma[ch]) : 1.0) * invstd;
          const T sc = T(scale), sh = T((beta ? double(beta[ch]) : 0.0) - mu * scale);
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            T* yp = y + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) yp[q] = xp[q] * sc + sh;
          }
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
    const std::int64_t m = n * s;
    parallel_for(
        c,
        [&](std::int64_t ch) {
          const double mu = double(mean[ch]), is = double(invstd[ch]);
          double sum_g = 0, sum_gx = 0;  // sum gy, sum gy * xhat
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            const T* gp = gy + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) {
              sum_g += double(gp[q]);
              sum_gx += double(gp[q]) * (double(xp[q]) - mu);
            }
          }
          sum_gx *= is;
          if (gbeta) gbeta[ch] = T(sum_g);
          if (ggamma) ggamma[ch] = T(sum_gx);
          if (!gx) return;
          const double k = (gamma ? double(gamma[ch]) : 1.0) * is;
          if (!batch_stats) {
            const T kk = T(k);
            for (std::int64_t b = 0; b < n; ++b) {
              const T* gp = gy + (b * c + ch) * s;
              T* dp = gx + (b * c + ch) * s;
              for (std::int64_t q = 0; q < s; ++q) dp[q] = gp[q] * kk;
            }
            return;
          }
          // gx = k * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat = (x - mu) * is
          const double mg = sum_g / double(m), mgx = sum_gx / double(m);
          const T a = T(k), b0 = T(-k * mg), cx = T(-k * is * mgx), mt = T(mu);
          for (std::int64_t b = 0; b < n; ++b) {
            const T* xp = x + (b * c + ch) * s;
            const T* gp = gy + (b * c + ch) * s;
            T* dp = gx + (b * c + ch) * s;
            for (std::int64_t q = 0; q < s; ++q) dp[q] = a * gp[q] + cx * (xp[q] - mt) + b0;
          }
        },
        3 * m);
  }
};

}  // namespace dml::cpu
