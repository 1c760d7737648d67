// Tests for dml/backend/cpu/linalg.hpp: the eigen-solver, QR and rank update behind t-SNE's PCA.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <dml/backend/cpu/linalg.hpp>

using dml::cpu::Linalg;

TEST_CASE("syrk_lower adds a * a^T to the lower triangle only") {
  const std::int64_t n = 3, m = 2;
  const std::vector<double> a = {1, 2, 3, /* column 1: */ -1, 0, 4};  // 3 x 2, column-major
  std::vector<double> c(9, 10.0);
  Linalg::syrk_lower(a.data(), n, m, c.data());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const double aat = a[i] * a[j] + a[3 + i] * a[3 + j];
      if (i >= j) CHECK(c[j * n + i] == doctest::Approx(10.0 + aat));
      else CHECK(c[j * n + i] == 10.0);  // the upper triangle is not written
    }
}

TEST_CASE("symmetric_eigen returns ascending eigenvalues and orthonormal eigenvectors") {
  // [[2, 1, 0], [1, 2, 0], [0, 0, 5]]: eigenvalues 1, 3, 5. Only the lower triangle is read.
  const std::int64_t n = 3;
  std::vector<double> a = {2, 1, 0, /**/ 99, 2, 0, /**/ 99, 99, 5};
  std::vector<double> values(3), vectors(9);
  Linalg::symmetric_eigen(a.data(), n, values.data(), vectors.data());
  CHECK(values[0] == doctest::Approx(1.0));
  CHECK(values[1] == doctest::Approx(3.0));
  CHECK(values[2] == doctest::Approx(5.0));
  const double full[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5};
  for (int c = 0; c < 3; ++c) {
    double norm = 0;
    for (int i = 0; i < 3; ++i) {
      double av = 0;
      for (int j = 0; j < 3; ++j) av += full[j * 3 + i] * vectors[c * 3 + j];
      CHECK(av == doctest::Approx(values[c] * vectors[c * 3 + i]));
      norm += vectors[c * 3 + i] * vectors[c * 3 + i];
    }
    CHECK(norm == doctest::Approx(1.0));
  }
}

TEST_CASE("orthonormal_columns spans the input's columns with orthonormal ones") {
  const std::int64_t rows = 5, cols = 2;
  const std::vector<double> a = {1, 2, 0, 1, 3, /**/ 2, 0, 1, 1, -1};
  std::vector<double> q(10);
  Linalg::orthonormal_columns(a.data(), rows, cols, q.data());
  for (int c = 0; c < cols; ++c)
    for (int d = 0; d < cols; ++d) {
      double dot = 0;
      for (int i = 0; i < rows; ++i) dot += q[c * rows + i] * q[d * rows + i];
      CHECK(dot == doctest::Approx(c == d ? 1.0 : 0.0));
    }
  // Each input column is its own projection onto span(q).
  for (int c = 0; c < cols; ++c) {
    std::vector<double> proj(rows, 0.0);
    for (int d = 0; d < cols; ++d) {
      double dot = 0;
      for (int i = 0; i < rows; ++i) dot += q[d * rows + i] * a[c * rows + i];
      for (int i = 0; i < rows; ++i) proj[i] += dot * q[d * rows + i];
    }
    for (int i = 0; i < rows; ++i) CHECK(proj[i] == doctest::Approx(a[c * rows + i]));
  }
}
