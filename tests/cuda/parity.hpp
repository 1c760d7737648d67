// tests/cuda/parity.hpp: the host half of the GPU tests' helpers: comparisons
// with tolerances and seeded random data. Plain C++ (no CUDA), so the CPU
// reference computations can live in .cpp files that g++ compiles once,
// instead of in every nvcc pass (see tests/cuda/cuda_test.cuh).
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../support/error_of.hpp"
#include "headers.hpp"

namespace dml_test {

// Counts elements where |got - want| > atol + rtol * |want| (NaN equals NaN)
// and reports the first one.
template <class T>
bool all_close(const std::vector<T>& got, const std::vector<T>& want, double rtol, double atol,
               const std::string& what) {
  if (got.size() != want.size()) {
    FAIL_CHECK(what, ": ", got.size(), " values, expected ", want.size());
    return false;
  }
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    bool ok = (std::isnan(g) && std::isnan(w)) || std::fabs(g - w) <= atol + rtol * std::fabs(w);
    if (!ok && bad++ == 0) first = i;
  }
  if (bad) {
    FAIL_CHECK(what, ": ", bad, " of ", got.size(), " values differ; first at ", first, ": got ",
               static_cast<double>(got[first]), ", expected ", static_cast<double>(want[first]));
    return false;
  }
  CHECK(true);
  return true;
}

// Bitwise equality (NaN equals NaN), for integer outputs and determinism checks.
template <class T>
bool all_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  return all_close(got, want, 0.0, 0.0, what);
}

// Max-norm comparison for long sums (convolutions, whole networks), where an
// element near zero has no meaningful relative error: passes when
// max |got - want| <= tol * max(max |want|, floor). Reports the worst element.
template <class T>
bool close_rel(const std::vector<T>& got, const std::vector<T>& want, double tol, const std::string& what,
               double floor = 1e-30) {
  if (got.size() != want.size()) {
    FAIL_CHECK(what, ": ", got.size(), " values, expected ", want.size());
    return false;
  }
  double scale = floor, worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    scale = std::fmax(scale, std::fabs(w));
    double d = std::isnan(g) || std::isnan(w) ? (std::isnan(g) && std::isnan(w) ? 0 : INFINITY) : std::fabs(g - w);
    if (d > worst) worst = d, at = i;
  }
  if (worst > tol * scale) {
    FAIL_CHECK(what, ": max |difference| ", worst, " at ", at, " (got ", static_cast<double>(got[at]), ", expected ",
               static_cast<double>(want[at]), ") exceeds ", tol, " x max |expected| ", scale);
    return false;
  }
  CHECK(true);
  return true;
}

using i64 = std::int64_t;
using CpuB = dml::Backend<dml::Cpu>;

using dml::testing::contains;

// n values uniform in [lo, hi), the same for a given seed on every machine.
template <class T>
std::vector<T> random_vec(std::size_t n, std::uint64_t seed, double lo = -1, double hi = 1) {
  dml::Generator g(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(lo + (hi - lo) * g.uniform());
  return v;
}

// n labels uniform in [0, classes).
inline std::vector<i64> random_labels(std::size_t n, i64 classes, std::uint64_t seed) {
  dml::Generator g(seed);
  std::vector<i64> v(n);
  for (auto& x : v) x = static_cast<i64>(g.below(static_cast<std::uint64_t>(classes)));
  return v;
}

}  // namespace dml_test
