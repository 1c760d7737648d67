// dml/backend/kernels/batchnorm.hpp: what batch normalisation over [n, c, s]
// does once a channel's sums are known, on both devices: the per-channel
// epilogues (statistics, running statistics, the affine coefficients) and the
// elementwise passes that apply them.
//
// The sums themselves are device-specific reductions (backend/cpu/batchnorm.hpp:
// a sequential double sum per channel; backend/cuda/batchnorm.cuh: a block sum
// per channel); they hand each channel's sums to the epilogue here. Each
// coefficient is computed in double and rounded to T once, so both devices
// apply the same T values.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../math.hpp"

namespace dml::kernels {

// What both forward epilogues store for channel ch of c: save_mean, save_invstd,
// and the affine coefficients coef[ch] = gamma * invstd, coef[c + ch] = beta -
// mean * coef[ch] (gamma, beta may be null: 1 and 0).
template <class T>
DML_HD void bn_store_forward(std::int64_t ch, std::int64_t c, double mean, double invstd, const T* gamma,
                            const T* beta, T* save_mean, T* save_invstd, T* coef) {
  save_mean[ch] = T(mean);
  save_invstd[ch] = T(invstd);
  const double scale = (gamma ? double(gamma[ch]) : 1.0) * invstd;
  coef[ch] = T(scale);
  coef[c + ch] = T((beta ? double(beta[ch]) : 0.0) - mean * scale);
}

// Training statistics of channel ch from its batch mean and sum of squared
// deviations ss over m = n * s values: save_mean, save_invstd = 1 / sqrt(var +
// eps) with the biased var = ss / m; running statistics (when non-null) move
// by momentum towards the mean and the unbiased variance (PyTorch's update);
// coef[ch] = gamma * invstd and coef[c + ch] = beta - mean * coef[ch] (gamma,
// beta may be null: 1 and 0).
template <class T>
struct BnTrainEpilogue {
  const T* gamma;
  const T* beta;
  T* save_mean;
  T* save_invstd;
  T* running_mean;
  T* running_var;
  T* coef;
  std::int64_t c, m;
  double momentum, eps;
  DML_HD void operator()(std::int64_t ch, double mean, double ss) const {
    const double var = ss / double(m);
    const double invstd = 1.0 / math::sqrt(var + eps);
    bn_store_forward(ch, c, mean, invstd, gamma, beta, save_mean, save_invstd, coef);
    if (running_mean) running_mean[ch] = T((1 - momentum) * double(running_mean[ch]) + momentum * mean);
    if (running_var)
      running_var[ch] = T((1 - momentum) * double(running_var[ch]) + momentum * (m > 1 ? ss / double(m - 1) : var));
  }
};

// Inference statistics of channel ch (1-D over channels): the given mean and
// var give save_mean, save_invstd and coef as BnTrainEpilogue does.
template <class T>
struct BnEvalStats {
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
    bn_store_forward(ch, c, double(mean[ch]), 1.0 / math::sqrt(double(var[ch]) + eps), gamma, beta, save_mean,
                     save_invstd, coef);
  }
};

// y = x * coef[ch] + coef[c + ch]; 2-D over (plane b * c + ch, position q < s).
template <class T>
struct BnApply {
  const T* x;
  const T* coef;
  T* y;
  std::int64_t c, s;
  struct Row {
    const T* x;
    T* y;
    T scale, shift;
    DML_HD void operator()(std::int64_t q) const { y[q] = x[q] * scale + shift; }
  };
  DML_HD Row row(std::int64_t plane) const {
    const std::int64_t ch = plane % c;
    return Row{x + plane * s, y + plane * s, coef[ch], coef[c + ch]};
  }
};

// Backward coefficients of channel ch from sum_g = sum gy and sum_gxc = sum
// gy * (x - mean) over its m values: gbeta = sum_g, ggamma = sum_gxc * invstd
// (when non-null), and the coefficients of gx into coef[0..3c):
//   batch statistics:  gx = a gy + cx (x - mean) + b0   (coef[ch] = a, coef[c + ch] = b0, coef[2c + ch] = cx)
//   fixed statistics:  gx = a gy                        (a = gamma * invstd)
// with a = gamma invstd, b0 = -a mean(gy), cx = -a invstd mean(gy xhat).
template <class T>
struct BnBackwardEpilogue {
  const T* gamma;
  const T* invstd;
  T* ggamma;
  T* gbeta;
  T* coef;
  std::int64_t c, m;
  bool batch_stats;
  DML_HD void operator()(std::int64_t ch, double sum_g, double sum_gxc) const {
    const double is = double(invstd[ch]);
    const double sum_gx = sum_gxc * is;
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
};

// gx from gy and BnBackwardEpilogue's coefficients; 2-D over (plane, q) as
// BnApply. kBatchStats as the epilogue's batch_stats.
template <class T, bool kBatchStats>
struct BnBackwardApply {
  const T* gy;
  const T* x;
  const T* mean;
  const T* coef;
  T* gx;
  std::int64_t c, s;
  struct Row {
    const T* gy;
    const T* x;
    T* gx;
    T a, b0, cx, mean;
    DML_HD void operator()(std::int64_t q) const {
      if constexpr (kBatchStats)
        gx[q] = a * gy[q] + cx * (x[q] - mean) + b0;
      else
        gx[q] = gy[q] * a;
    }
  };
  DML_HD Row row(std::int64_t plane) const {
    const std::int64_t ch = plane % c;
    const std::int64_t o = plane * s;
    if constexpr (kBatchStats)
      return Row{gy + o, x + o, gx + o, coef[ch], coef[c + ch], coef[2 * c + ch], mean[ch]};
    else
      return Row{gy + o, x + o, gx + o, coef[ch], T(0), T(0), T(0)};
  }
};

// ---- synchronised batch normalisation (ops/sync_batchnorm.hpp) --------------
// Each rank's per-channel sums are all-reduced between the sum kernels above and
// the epilogues, so the epilogues see the sums of every rank's batch.

// Forward, before the all-reduce: channel ch's sum and sum of squares over this
// rank's m values, from the mean and the sum of squared deviations ss:
// sums[ch] = m mean, sums[c + ch] = ss + m mean^2.
struct BnStoreSums {
  double* sums;
  std::int64_t c, m;
  DML_HD void operator()(std::int64_t ch, double mean, double ss) const {
    sums[ch] = mean * double(m);
    sums[c + ch] = ss + mean * mean * double(m);
  }
};

// Forward, after it (1-D over channels): the mean and biased variance of the
// m = epilogue.m values of all ranks (var = max(0, S2 / m - mean^2)), handed to
// BnTrainEpilogue (statistics, running statistics, coef).
template <class T>
struct BnSyncStats {
  const double* sums;
  BnTrainEpilogue<T> epilogue;
  DML_HD void operator()(std::int64_t ch) const {
    const double m = double(epilogue.m);
    const double mean = sums[ch] / m;
    const double var = math::max(0.0, sums[epilogue.c + ch] / m - mean * mean);
    epilogue(ch, mean, var * m);
  }
};

// Backward, before the all-reduce: this rank's gbeta = sum gy and ggamma = sum
// gy xhat (when non-null: a parameter's gradient is this rank's share), and
// both sums times `weight` into sums[ch], sums[c + ch].
template <class T>
struct BnStoreBackwardSums {
  const T* invstd;
  T* ggamma;
  T* gbeta;
  double* sums;
  std::int64_t c;
  double weight;
  DML_HD void operator()(std::int64_t ch, double sum_g, double sum_gxc) const {
    const double sum_gx = sum_gxc * double(invstd[ch]);
    if (gbeta) gbeta[ch] = T(sum_g);
    if (ggamma) ggamma[ch] = T(sum_gx);
    sums[ch] = sum_g * weight;
    sums[c + ch] = sum_gx * weight;
  }
};

// Backward, after it (1-D over channels): BnBackwardApply<T, true>'s
// coefficients from the all-reduced sums divided by `weight` (this rank's
// scale) and the global count m.
template <class T>
struct BnSyncBackwardCoef {
  const double* sums;
  const T* gamma;
  const T* invstd;
  T* coef;
  std::int64_t c, m;
  double weight;
  DML_HD void operator()(std::int64_t ch) const {
    const double is = double(invstd[ch]);
    const double k = (gamma ? double(gamma[ch]) : 1.0) * is;
    const double mg = sums[ch] / weight / double(m), mgx = sums[c + ch] / weight / double(m);
    coef[ch] = T(k);
    coef[c + ch] = T(-k * mg);
    coef[2 * c + ch] = T(-k * is * mgx);
  }
};

}  // namespace dml::kernels
