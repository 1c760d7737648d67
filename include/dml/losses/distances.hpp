// dml/losses/distances.hpp: the distance policies of the embedding losses.
// Each gives the pairwise matrix [N, M] of two embedding sets through the
// backend's GEMM (so on both devices), differentiable in both arguments, and
// says whether larger means closer (a similarity) or farther (a distance).
//
//   Cosine            cos(a_i, b_j)                       similarity
//   Dot               a_i . b_j                           similarity
//   Euclidean         |a_i - b_j|     (normalize: of a_i/|a_i|, b_j/|b_j|)
//   SquaredEuclidean  |a_i - b_j|^2   (same)
//
// As in pytorch-metric-learning, the Euclidean ones normalise the embeddings
// first by default (`normalize = true`).
#pragma once

#include "../ops/elementwise.hpp"
#include "../ops/matmul.hpp"
#include "../ops/norm.hpp"
#include "../ops/reduce.hpp"

namespace dml::distances {

struct Cosine {
  static constexpr bool kSimilarity = true;
  static constexpr const char* kName = "cosine";
  template <class T, class D>
  Tensor<T, D> matrix(const Tensor<T, D>& a, const Tensor<T, D>& b) const {
    return ops::matmul(ops::l2_normalize(a), ops::l2_normalize(b), false, true);
  }
};

struct Dot {
  static constexpr bool kSimilarity = true;
  static constexpr const char* kName = "dot";
  template <class T, class D>
  Tensor<T, D> matrix(const Tensor<T, D>& a, const Tensor<T, D>& b) const {
    return ops::matmul(a, b, false, true);
  }
};

struct SquaredEuclidean {
  static constexpr bool kSimilarity = false;
  static constexpr const char* kName = "squared_euclidean";
  bool normalize = true;
  // |a|^2 + |b|^2 - 2 a.b, clamped at 0 (rounding can make it slightly negative).
  template <class T, class D>
  Tensor<T, D> matrix(const Tensor<T, D>& a, const Tensor<T, D>& b) const {
    if (normalize) return ops::relu(ops::affine(Cosine{}.matrix(a, b), -2.0, 2.0));
    const Tensor<T, D> aa = ops::sum(ops::square(a), 1, true);                    // [N, 1]
    const Tensor<T, D> bb = ops::transpose(ops::sum(ops::square(b), 1, true));    // [1, M]
    return ops::relu(aa + bb - ops::matmul(a, b, false, true) * T(2));
  }
};

struct Euclidean {
  static constexpr bool kSimilarity = false;
  static constexpr const char* kName = "euclidean";
  bool normalize = true;
  // The square root's gradient is 0 where a distance is 0 (the diagonal).
  template <class T, class D>
  Tensor<T, D> matrix(const Tensor<T, D>& a, const Tensor<T, D>& b) const {
    return ops::safe_sqrt(SquaredEuclidean{normalize}.matrix(a, b));
  }
};

template <class P>
concept Distance = requires { P::kSimilarity; P::kName; };

}  // namespace dml::distances
