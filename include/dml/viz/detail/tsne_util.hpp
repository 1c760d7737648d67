// dml/viz/detail/tsne_util.hpp: the thread count, a portable RNG and a
// fixed-order distance kernel shared by the t-SNE pieces (their parallel
// loops are the host backend's, backend/cpu/parallel.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include "../../backend/cpu/parallel.hpp"

namespace dml::viz::detail {

// Number of threads to use for a requested count (0 = all available).
inline int tsne_threads(int requested) {
#if defined(_OPENMP)
  return requested > 0 ? requested : cpu::max_threads();
#else
  (void)requested;
  return 1;
#endif
}

// xoshiro256** seeded through SplitMix64: the same stream on every platform,
// unlike std::normal_distribution.
class TsneRng {
 public:
  explicit TsneRng(std::uint64_t seed) {
    std::uint64_t z = seed;
    for (auto& s : s_) s = splitmix(z);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }

  // Standard normal (Box-Muller; the spare value is kept).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double a = 2.0 * std::numbers::pi * uniform();
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix(std::uint64_t& z) {
    std::uint64_t r = (z += 0x9e3779b97f4a7c15ULL);
    r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ULL;
    r = (r ^ (r >> 27)) * 0x94d049bb133111ebULL;
    return r ^ (r >> 31);
  }
  std::uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// Squared Euclidean distance between two float rows, accumulated in double
// over 8 independent lanes (vectorisable without -ffast-math) and combined
// in a fixed order, so the result never depends on threads or blocking.
inline double squared_distance(const float* a, const float* b, std::int64_t dim) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double t = static_cast<double>(a[i + l]) - static_cast<double>(b[i + l]);
      acc[l] += t * t;
    }
  }
  for (int l = 0; i < dim; ++i, ++l) {
    const double t = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    acc[l] += t * t;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace dml::viz::detail
