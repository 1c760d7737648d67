// dml/backend/cpu/linalg.hpp: the dense double-precision linear algebra that
// t-SNE's PCA start needs (viz/detail/tsne_init.hpp), through Eigen: a
// symmetric rank update, a symmetric eigen-decomposition and a thin QR.
// Host-only helpers on raw column-major buffers, not part of Backend<Cpu>
// (which has the same names on both devices).
//
// The decompositions run serially with Eigen's single-thread blocking, so they
// round the same for every OpenMP thread count.
#pragma once

// Eigen 3.4's AVX-512 bfloat16 code trips -Wunused-variable under -march=native.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dml::cpu {

namespace detail {
// Runs f on one thread whose nthreads setting is 1, so that Eigen takes its
// single-thread path even inside a larger team: the rounding never depends
// on the thread count. f must not throw.
template <class F>
void eigen_serial(F&& f) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(1)
  {
    omp_set_num_threads(1);  // this region's own setting; it dies with the region
    f();
  }
#else
  f();
#endif
}
}  // namespace detail

struct Linalg {
  using ColMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;

  // The lower triangle of c (n x n) += a * a^T for a (n x m); column-major.
  // Eigen's triangular product, single-threaded: a fixed summation order.
  static void syrk_lower(const double* a, std::int64_t n, std::int64_t m, double* c) {
    Eigen::Map<ColMat> cm(c, n, n);
    cm.selfadjointView<Eigen::Lower>().rankUpdate(Eigen::Map<const ColMat>(a, n, m));
  }

  // Eigenvalues (ascending, into values[n]) and eigenvectors (the columns of
  // vectors, n x n column-major) of the symmetric n x n matrix a, of which only
  // the lower triangle is read.
  static void symmetric_eigen(const double* a, std::int64_t n, double* values, double* vectors) {
    detail::eigen_serial([&] {
      const ColMat m = Eigen::Map<const ColMat>(a, n, n);  // a view of a const Map does not compile
      Eigen::SelfAdjointEigenSolver<ColMat> eig(m.selfadjointView<Eigen::Lower>());
      Eigen::Map<Eigen::VectorXd>(values, n) = eig.eigenvalues();
      Eigen::Map<ColMat>(vectors, n, n) = eig.eigenvectors();
    });
  }

  // q (rows x cols, column-major, rows >= cols) = the thin Q factor of the
  // Householder QR of a (same shape): orthonormal columns spanning a's.
  static void orthonormal_columns(const double* a, std::int64_t rows, std::int64_t cols, double* q) {
    detail::eigen_serial([&] {
      Eigen::HouseholderQR<ColMat> qr(Eigen::Map<const ColMat>(a, rows, cols));
      Eigen::Map<ColMat>(q, rows, cols) = qr.householderQ() * ColMat::Identity(rows, cols);
    });
  }
};

}  // namespace dml::cpu
