// dml/backend/cuda/gemm.cuh: row-major GEMM through cuBLAS (no copies).
//
// cuBLAS is column-major, and a row-major R x C matrix with leading dimension
// ld is the column-major C x R matrix with the same ld. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: the
// operands swap, the transpose flags and leading dimensions pass unchanged.
#pragma once

#include <climits>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "../../core/device.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

// c[i, j] = beta * c[i, j] over an m x n block with leading dimension ldc (beta == 0 writes zeros).
template <class T>
struct ScaleMatrixOp {
  T* c;
  std::int64_t n, ldc;
  T beta;
  DML_HD void operator()(std::int64_t k) const {
    T& v = c[(k / n) * ldc + k % n];
    v = beta == T(0) ? T(0) : beta * v;
  }
};

inline int blas_int(std::int64_t v, const char* what) {
  DML_CHECK(v >= 0 && v <= INT_MAX, "gemm: ", what, " = ", v, " exceeds cuBLAS's 32-bit int range");
  return static_cast<int>(v);
}

}  // namespace detail

struct Gemm {
  // C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K:
  // A is M x K (lda >= K) or, with trans_a, K x M (lda >= M). Likewise B.
  // Throws dml::Error when a size exceeds cuBLAS's int range or cuBLAS fails.
  template <class T>
  static void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                   const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    static_assert(Real<T>, "gemm: cuBLAS path exists for float and double");
    if (m == 0 || n == 0) return;
    if (k == 0) {  // C = beta * C; cuBLAS would reject the degenerate leading dimensions
      detail::for_each(m * n, detail::ScaleMatrixOp<T>{c, n, ldc, beta});
      return;
    }
    int im = detail::blas_int(m, "m"), in = detail::blas_int(n, "n"), ik = detail::blas_int(k, "k");
    int ilda = detail::blas_int(lda, "lda"), ildb = detail::blas_int(ldb, "ldb"), ildc = detail::blas_int(ldc, "ldc");
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    Context& ctx = context();
    std::lock_guard lock(ctx.cublas_mutex);
    if constexpr (std::is_same_v<T, float>)
      DML_CUBLAS_CHECK(cublasSgemm(ctx.cublas, op_b, op_a, in, im, ik, &alpha, b, ildb, a, ilda, &beta, c, ildc));
    else
      DML_CUBLAS_CHECK(cublasDgemm(ctx.cublas, op_b, op_a, in, im, ik, &alpha, b, ildb, a, ilda, &beta, c, ildc));
  }
};

}  // namespace dml::cuda
