// dml/ops/softmax.hpp: log-softmax and cross-entropy over the last dimension.
#pragma once

#include "common.hpp"

namespace dml::ops {

// log(softmax(x)) over the last dimension, via a stable log-sum-exp.
template <class T, class D>
Tensor<T, D> log_softmax(const Tensor<T, D>& x) {
  static_assert(Real<T>, "log_softmax needs float or double tensors");
  DML_CHECK(x.defined() && x.rank() >= 1 && x.dim(-1) > 0, "log_softmax: needs a tensor with a non-empty last ",
            "dimension, got ", x.defined() ? x.shape().str() : "undefined");
  std::int64_t cols = x.dim(-1), rows = x.numel() / cols;
  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Backend<D>::log_softmax(x.data(), out.data(), rows, cols);
  if (detail::tracking(x))
    detail::record(out, "log_softmax", {&x}, [ys = out.detach(), rows, cols](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(ys.shape());
      Backend<D>::log_softmax_backward(g.data(), ys.data(), dx.data(), rows, cols);
      return detail::Grads<T, D>{dx};
    });
  return out;
}

// Mean cross-entropy of logits [N, C] against integer labels [N]. With label
// smoothing eps the target is (1 - eps) one-hot + eps / C. Throws on shape
// mismatch, a label outside [0, C), N == 0, or eps outside [0, 1].
template <class T, class D>
Tensor<T, D> cross_entropy(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels,
                           double label_smoothing = 0.0) {
  static_assert(Real<T>, "cross_entropy needs float or double logits");
  detail::expect_rank(logits, 2, "cross_entropy", "logits");
  DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == logits.dim(0), "cross_entropy: labels of shape ",
            labels.defined() ? labels.shape().str() : "undefined", " do not match logits of shape ",
            logits.shape().str());
  DML_CHECK(logits.dim(0) > 0 && logits.dim(1) > 0, "cross_entropy: empty logits of shape ", logits.shape().str());
  DML_CHECK(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy: label_smoothing must lie in [0, 1], got ",
            label_smoothing);
  detail::expect_indices(labels, logits.dim(1), "cross_entropy");
  std::int64_t rows = logits.dim(0), cols = logits.dim(1);
  T eps = T(label_smoothing);
  Tensor<T, D> logp = Tensor<T, D>::empty(logits.shape());
  Backend<D>::log_softmax(logits.data(), logp.data(), rows, cols);
  Tensor<T, D> per_row = Tensor<T, D>::empty(Shape{rows});
  Backend<D>::nll_smoothed(logp.data(), labels.data(), per_row.data(), rows, cols, eps);
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{});
  Backend<D>::sum_all(per_row.data(), rows, out.data());
  Backend<D>::map(fn::Affine{1.0 / static_cast<double>(rows), 0.0}, out.data(), out.data(), 1);
  if (detail::tracking(logits))
    detail::record(out, "cross_entropy", {&logits}, [logp, labels, rows, cols, eps](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(logp.shape());
      Backend<D>::cross_entropy_backward(logp.data(), labels.data(), g.data(), dx.data(), rows, cols, eps);
      return detail::Grads<T, D>{dx};
    });
  return out;
}

}  // namespace dml::ops
