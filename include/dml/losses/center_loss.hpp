// dml/losses/center_loss.hpp: Center Loss (Wen et al. 2016).
#pragma once

#include <cstdint>
#include <string>

#include "../nn/module.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/margin.hpp"
#include "../ops/reduce.hpp"

namespace dml::losses {

// L = 1/2 * mean_i |x_i - c_{y_i}|^2 over a batch of embeddings x [N, dim].
// The gradient flows to x only. The centers are a buffer (`centers`, shape
// [classes, dim], zeros at start) that the optimiser never sees: each training
// call moves them by the paper's rule
//   delta_j = sum_{y_i = j} (c_j - x_i) / (1 + n_j),   c_j <- c_j - alpha * delta_j,
// so their speed does not depend on the loss weight. Eval mode leaves them be.
template <class T = float, class D = Cpu>
class CenterLoss : public nn::Module<T, D> {
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;

 public:
  // Throws dml::Error for classes or dim < 1 or alpha outside (0, 1].
  CenterLoss(std::int64_t classes, std::int64_t dim, double alpha = 0.5) : classes_(classes), dim_(dim), alpha_(alpha) {
    DML_CHECK(classes >= 1 && dim >= 1, "CenterLoss: classes and dim must be >= 1, got ", classes, " and ", dim);
    DML_CHECK(alpha > 0 && alpha <= 1, "CenterLoss: alpha must lie in (0, 1], got ", alpha);
    centers_ = this->register_buffer("centers", TensorT::zeros(Shape{classes, dim}));
  }

  // The loss for a batch; in training mode also updates the centers (after the
  // loss is computed, so the loss and gradient use the centers before the step).
  TensorT operator()(const TensorT& emb, const Labels& labels) {
    DML_CHECK(emb.defined() && emb.rank() == 2 && emb.dim(1) == dim_, "CenterLoss: embedding of shape ",
              emb.defined() ? emb.shape().str() : "undefined", " does not match the centers' dimension ", dim_);
    DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == emb.dim(0), "CenterLoss: labels of shape ",
              labels.defined() ? labels.shape().str() : "undefined", " do not match embedding of shape ",
              emb.shape().str());
    DML_CHECK(emb.dim(0) > 0, "CenterLoss: empty batch");
    TensorT own = ops::gather_rows(centers_, labels);
    TensorT loss = ops::sum(ops::square(emb - own)) * T(0.5 / static_cast<double>(emb.dim(0)));
    if (this->is_training())
      Backend<D>::center_update(centers_.data(), emb.data(), labels.data(), emb.dim(0), dim_, classes_, T(alpha_));
    return loss;
  }

  std::string type_name() const override { return "CenterLoss"; }
  const TensorT& centers() const { return centers_; }
  double alpha() const { return alpha_; }

 private:
  std::int64_t classes_, dim_;
  double alpha_;
  TensorT centers_;
};

}  // namespace dml::losses
