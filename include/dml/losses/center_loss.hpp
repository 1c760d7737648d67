// dml/losses/center_loss.hpp: Center Loss (Wen et al. 2016).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/collective.hpp"
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
// In data-parallel training (set_collective; the Learner does it) the update
// runs on every rank over the ranks' batches gathered in rank order, so every
// rank holds the centres one process would have with the whole batch.
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
    if (this->is_training()) update(emb, labels);
    return loss;
  }

  // Data-parallel training: the centre update sees every rank's batch (all
  // gathered through c, which must outlive the loss); null: this rank's only.
  void set_collective(Collective* c) noexcept { comm_ = c; }

  std::string type_name() const override { return "CenterLoss"; }
  const TensorT& centers() const { return centers_; }
  double alpha() const { return alpha_; }

 private:
  void update(const TensorT& emb, const Labels& labels) {
    if (!comm_ || comm_->size() == 1) {
      Backend<D>::center_update(centers_.data(), emb.data(), labels.data(), emb.dim(0), dim_, classes_, T(alpha_));
      return;
    }
    const std::vector<std::size_t> rows = comm_->gather_counts(static_cast<std::size_t>(emb.dim(0)));
    std::vector<std::size_t> values(rows);
    std::int64_t total = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      total += static_cast<std::int64_t>(rows[r]);
      values[r] *= static_cast<std::size_t>(dim_);
    }
    TensorT all = TensorT::empty(Shape{total, dim_});
    Labels all_labels = Labels::empty(Shape{total});
    all_gather_on<D>(*comm_, emb.data(), all.data(), values);
    all_gather_on<D>(*comm_, labels.data(), all_labels.data(), rows);
    Backend<D>::center_update(centers_.data(), all.data(), all_labels.data(), total, dim_, classes_, T(alpha_));
  }

  std::int64_t classes_, dim_;
  double alpha_;
  TensorT centers_;
  Collective* comm_ = nullptr;
};

}  // namespace dml::losses
