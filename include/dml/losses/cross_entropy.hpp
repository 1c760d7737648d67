// dml/losses/cross_entropy.hpp: the classification loss every head trains with.
#pragma once

#include "../ops/softmax.hpp"

namespace dml::losses {

// Mean cross-entropy of logits [N, C] against labels [N], computed through a
// stable log-sum-exp; label_smoothing in [0, 1]. See ops::cross_entropy.
template <class T, class D>
Tensor<T, D> cross_entropy(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels,
                           double label_smoothing = 0.0) {
  return ops::cross_entropy(logits, labels, label_smoothing);
}

}  // namespace dml::losses
