// dml/backend/cpu/gemm.hpp: row-major GEMM. float runs on dml's own AVX2 /
// AVX-512 kernels where the host has them (gemm_kernel.hpp), everything else
// through Eigen maps (no copies).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "gemm_kernel.hpp"

namespace dml::cpu {

struct Gemm {
  // C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K:
  // A is M x K (lda >= K) or, with trans_a, K x M (lda >= M). Likewise B.
  template <class T>
  static void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                   const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using CMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    using MMap = Eigen::Map<Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    if (m == 0 || n == 0) return;
    MMap cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (k == 0) {
      if (beta == T(0)) cm.setZero();
      else cm *= beta;
      return;
    }
    if constexpr (std::is_same_v<T, float>)
      if (gemm_kernel::run(m, n, k, alpha, {a, lda, trans_a}, {b, ldb, trans_b}, beta, c, ldc)) return;
    CMap am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
    CMap bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
    auto run = [&](const auto& opa, const auto& opb) {
      if (beta == T(0)) cm.noalias() = alpha * (opa * opb);
      else {
        if (beta != T(1)) cm *= beta;
        cm.noalias() += alpha * (opa * opb);
      }
    };
    if (!trans_a && !trans_b) run(am, bm);
    else if (trans_a && !trans_b) run(am.transpose(), bm);
    else if (!trans_a && trans_b) run(am, bm.transpose());
    else run(am.transpose(), bm.transpose());
  }
};

}  // namespace dml::cpu
