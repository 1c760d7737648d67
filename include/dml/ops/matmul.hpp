// dml/ops/matmul.hpp: 2-D matrix product with transposes as flags, and transpose.
#pragma once

#include "common.hpp"

namespace dml::ops {

// op(a) @ op(b), where op transposes when the flag is set. No copies are made:
// the flags go straight to GEMM. Throws naming both shapes on a mismatch.
template <class T, class D>
Tensor<T, D> matmul(const Tensor<T, D>& a, const Tensor<T, D>& b, bool trans_a = false, bool trans_b = false) {
  static_assert(Real<T>, "matmul needs float or double tensors");
  detail::expect_rank(a, 2, "matmul", "left operand");
  detail::expect_rank(b, 2, "matmul", "right operand");
  std::int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  std::int64_t kb = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
  DML_CHECK(k == kb, "matmul: inner dimensions differ: ", a.shape().str(), (trans_a ? "^T" : ""), " @ ",
            b.shape().str(), (trans_b ? "^T" : ""));
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{m, n});
  Backend<D>::gemm(trans_a, trans_b, m, n, k, T(1), a.data(), a.dim(1), b.data(), b.dim(1), T(0), out.data(), n);
  if (detail::tracking(a, b))
    detail::record(out, "matmul", {&a, &b},
                   [as = a.detach(), bs = b.detach(), trans_a, trans_b, m, n, k](const Tensor<T, D>& g, Needs need) {
                     Tensor<T, D> ga, gb;
                     if (need[0]) {
                       ga = Tensor<T, D>::empty(as.shape());
                       if (!trans_a)  // dA = G op(B)^T        (m x k)
                         Backend<D>::gemm(false, !trans_b, m, k, n, T(1), g.data(), n, bs.data(), bs.dim(1), T(0),
                                          ga.data(), k);
                       else  // dA = op(B) G^T                 (k x m)
                         Backend<D>::gemm(trans_b, true, k, m, n, T(1), bs.data(), bs.dim(1), g.data(), n, T(0),
                                          ga.data(), m);
                     }
                     if (need[1]) {
                       gb = Tensor<T, D>::empty(bs.shape());
                       if (!trans_b)  // dB = op(A)^T G        (k x n)
                         Backend<D>::gemm(!trans_a, false, k, n, m, T(1), as.data(), as.dim(1), g.data(), n, T(0),
                                          gb.data(), n);
                       else  // dB = G^T op(A)                 (n x k)
                         Backend<D>::gemm(true, trans_a, n, k, m, T(1), g.data(), n, as.data(), as.dim(1), T(0),
                                          gb.data(), k);
                     }
                     return detail::Grads<T, D>{ga, gb};
                   });
  return out;
}

// The transpose of a 2-D tensor, as a new contiguous tensor.
template <class T, class D>
Tensor<T, D> transpose(const Tensor<T, D>& x) {
  static_assert(Real<T>, "transpose needs float or double tensors");
  detail::expect_rank(x, 2, "transpose");
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{x.dim(1), x.dim(0)});
  Backend<D>::transpose2d(x.data(), out.data(), x.dim(0), x.dim(1));
  if (detail::tracking(x))
    detail::record(out, "transpose", {&x}, [](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(Shape{g.dim(1), g.dim(0)});
      Backend<D>::transpose2d(g.data(), dx.data(), g.dim(0), g.dim(1));
      return detail::Grads<T, D>{dx};
    });
  return out;
}

}  // namespace dml::ops
