// Tests for dml/backend/cpu/dot_rows.hpp: the packed distance GEMM of eval and viz.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <dml/backend/cpu/dot_rows.hpp>

namespace {

std::vector<float> ramp(std::int64_t rows, std::int64_t k, std::uint32_t seed) {
  std::vector<float> v(static_cast<std::size_t>(rows * k));
  std::uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
  }
  return v;
}

}  // namespace

TEST_CASE("dot_rows matches a double loop across panel, row-block and k-slice edges") {
  using dml::cpu::DotRowsWorkspace, dml::cpu::dot_rows;
  namespace d = dml::cpu::detail;
  // m > kDotMc, n not a multiple of kDotNr, k > kDotKc: every edge path runs.
  const std::int64_t m = d::kDotMc + 13, n = 2 * d::kDotNr + 5, k = d::kDotKc + 44, ldc = n + 3;
  const auto a = ramp(m, k, 1), b = ramp(n, k, 2);
  std::vector<float> c(static_cast<std::size_t>(m * ldc), -7.0f);
  DotRowsWorkspace ws(n);
  dot_rows(a.data(), m, b.data(), n, k, c.data(), ldc, ws);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (std::int64_t t = 0; t < k; ++t) {
        ref += double(a[i * k + t]) * b[j * k + t];
        mag += std::abs(double(a[i * k + t]) * b[j * k + t]);
      }
      CHECK(std::abs(c[i * ldc + j] - ref) <= 1e-5 * mag + 1e-6);
    }
    for (std::int64_t j = n; j < ldc; ++j) CHECK(c[i * ldc + j] == -7.0f);  // padding untouched
  }
}

TEST_CASE("dot_rows gives equal rows bit-identical dot products wherever they sit") {
  using dml::cpu::DotRowsWorkspace, dml::cpu::dot_rows;
  namespace d = dml::cpu::detail;
  const std::int64_t m = d::kDotMc + 7, n = d::kDotNr + 3, k = d::kDotKc + 9;
  auto a = ramp(m, k, 3), b = ramp(n, k, 4);
  // Row 0 of A again at the last row (another micro-tile, another row block); column 0 of
  // B again at the last column (another panel, a partial one).
  for (std::int64_t t = 0; t < k; ++t) a[(m - 1) * k + t] = a[t], b[(n - 1) * k + t] = b[t];
  std::vector<float> c(static_cast<std::size_t>(m * n));
  DotRowsWorkspace ws(n);
  dot_rows(a.data(), m, b.data(), n, k, c.data(), n, ws);
  for (std::int64_t j = 0; j < n; ++j) CHECK(c[(m - 1) * n + j] == c[j]);
  for (std::int64_t i = 0; i < m; ++i) CHECK(c[i * n + n - 1] == c[i * n]);
  // The same product in smaller calls (one row at a time) rounds the same.
  std::vector<float> one(static_cast<std::size_t>(n));
  for (std::int64_t i : {std::int64_t{0}, std::int64_t{5}, m - 1}) {
    dot_rows(a.data() + i * k, 1, b.data(), n, k, one.data(), n, ws);
    for (std::int64_t j = 0; j < n; ++j) CHECK(one[j] == c[i * n + j]);
  }
}

TEST_CASE("dot_rows rounds one panel of B (A read in place) as it rounds several (A packed)") {
  using dml::cpu::DotRowsWorkspace, dml::cpu::dot_rows;
  namespace d = dml::cpu::detail;
  const std::int64_t m = d::kDotMc + 11, few = 5, many = d::kDotNr + 7, k = d::kDotKc + 30;
  const auto a = ramp(m, k, 5), b = ramp(many, k, 6);  // the first `few` rows of b are the small B
  std::vector<float> c_few(static_cast<std::size_t>(m * few)), c_many(static_cast<std::size_t>(m * many));
  DotRowsWorkspace ws(many);
  dot_rows(a.data(), m, b.data(), few, k, c_few.data(), few, ws);
  dot_rows(a.data(), m, b.data(), many, k, c_many.data(), many, ws);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < few; ++j) CHECK(c_few[i * few + j] == c_many[i * many + j]);
}
