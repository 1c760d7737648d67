// dml/nn/batchnorm.hpp: BatchNorm1d and BatchNorm2d, as PyTorch's.
#pragma once

#include <optional>
#include <type_traits>

#include "../core/collective.hpp"
#include "../ops/batchnorm.hpp"
#include "../ops/sync_batchnorm.hpp"
#include "module.hpp"

namespace dml::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  // Weight of the batch in the running statistics; nullopt: the cumulative
  // average (1 / num_batches_tracked), as PyTorch's momentum=None.
  std::optional<double> momentum = 0.1;
  bool affine = true;               // learnable weight (1) and bias (0)
  bool track_running_stats = true;  // running_mean, running_var, num_batches_tracked
};

// Shared by BatchNorm1d and BatchNorm2d, which differ in the ranks they accept.
// Training mode normalises with batch statistics and updates the running ones
// (unbiased variance) and num_batches_tracked; eval mode uses the running
// statistics. Without track_running_stats both modes use batch statistics.
// With set_collective (sync_batch_norm below) training statistics are those of
// every rank's batch (ops::sync_batch_norm; host or device tensors).
template <class T = float, class D = Cpu>
class BatchNormBase : public Module<T, D> {
 public:
  BatchNormBase(std::int64_t features, BatchNormOptions opt) : features_(features), opt_(opt) {
    DML_CHECK(features >= 1, "BatchNorm: num_features must be >= 1, got ", features);
    if (opt.affine) {
      weight_ = this->register_parameter("weight", Tensor<T, D>::ones(Shape{features}));
      bias_ = this->register_parameter("bias", Tensor<T, D>::zeros(Shape{features}));
    }
    if (opt.track_running_stats) {
      running_mean_ = this->register_buffer("running_mean", Tensor<T, D>::zeros(Shape{features}));
      running_var_ = this->register_buffer("running_var", Tensor<T, D>::ones(Shape{features}));
      num_batches_ = this->register_buffer("num_batches_tracked", Tensor<std::int64_t, D>::zeros(Shape{}));
    }
  }

  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    check_input(x);
    const bool update = this->is_training() && opt_.track_running_stats;
    double momentum = opt_.momentum.value_or(0.0);
    if (update) {
      // Counted where the buffer lives (a one-element kernel on CUDA), so a
      // training step does not wait for the device; read back only for the
      // cumulative average, which needs the count on the host.
      auto* n = num_batches_.data();
      Backend<D>::map(fn::Affine{1.0, 1.0}, n, n, 1);
      if (!opt_.momentum) momentum = 1.0 / static_cast<double>(num_batches_.item());
    }
    const bool batch_stats = this->is_training() || !opt_.track_running_stats;
    Tensor<T, D> rm, rv;
    if (opt_.track_running_stats && (update || !batch_stats)) {
      rm = running_mean_;
      rv = running_var_;
    }
    if (comm_ && batch_stats && comm_->size() > 1)
      return ops::sync_batch_norm(x, weight_, bias_, rm, rv, *comm_, ops::BatchNormOptions{true, momentum, opt_.eps});
    return ops::batch_norm(x, weight_, bias_, rm, rv, ops::BatchNormOptions{batch_stats, momentum, opt_.eps});
  }

  std::int64_t num_features() const { return features_; }
  const BatchNormOptions& options() const { return opt_; }
  // Undefined without affine / track_running_stats.
  const Tensor<T, D>& weight() const { return weight_; }
  const Tensor<T, D>& bias() const { return bias_; }
  const Tensor<T, D>& running_mean() const { return running_mean_; }
  const Tensor<T, D>& running_var() const { return running_var_; }
  const Tensor<std::int64_t, D>& num_batches_tracked() const { return num_batches_; }
  // Batch statistics over every rank of c (SyncBatchNorm; c must outlive the
  // module), or this rank's alone (null, the default).
  void set_collective(Collective* c) noexcept { comm_ = c; }
  Collective* collective() const noexcept { return comm_; }

 protected:
  virtual void check_input(const Tensor<T, D>& x) const = 0;
  void check_channels(const Tensor<T, D>& x) const {
    DML_CHECK(x.dim(1) == features_, this->type_name(), ": input of shape ", x.shape().str(), " has ", x.dim(1),
              " channels, expected ", features_);
  }

 private:
  std::int64_t features_;
  BatchNormOptions opt_;
  Tensor<T, D> weight_, bias_, running_mean_, running_var_;
  Tensor<std::int64_t, D> num_batches_;
  Collective* comm_ = nullptr;
};

// Over [N, C] or [N, C, L].
template <class T = float, class D = Cpu>
class BatchNorm1d : public BatchNormBase<T, D> {
 public:
  explicit BatchNorm1d(std::int64_t features, BatchNormOptions opt = {}) : BatchNormBase<T, D>(features, opt) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input(const Tensor<T, D>& x) const override {
    DML_CHECK(x.defined() && (x.rank() == 2 || x.rank() == 3), "BatchNorm1d: expected a 2-D or 3-D input, got ",
              dml::detail::shape_or_undefined(x));
    this->check_channels(x);
  }
};

// Over [N, C, H, W].
template <class T = float, class D = Cpu>
class BatchNorm2d : public BatchNormBase<T, D> {
 public:
  explicit BatchNorm2d(std::int64_t features, BatchNormOptions opt = {}) : BatchNormBase<T, D>(features, opt) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  void check_input(const Tensor<T, D>& x) const override {
    DML_CHECK(x.defined() && x.rank() == 4, "BatchNorm2d: expected a 4-D input, got ",
              dml::detail::shape_or_undefined(x));
    this->check_channels(x);
  }
};

// PyTorch's convert_sync_batchnorm, in place: every BatchNorm of m (m
// included) takes its training statistics over the ranks of c (null: back to
// per-rank statistics). Returns how many layers it set.
template <class T, class D>
int sync_batch_norm(Module<T, D>& m, Collective* c) {
  int count = 0;
  for (const auto& [prefix, sub] : m.named_modules())
    // m is ours to change: named_modules only hands out const pointers.
    if (auto* bn = dynamic_cast<BatchNormBase<T, D>*>(const_cast<Module<T, D>*>(sub))) {
      bn->set_collective(c);
      ++count;
    }
  return count;
}

}  // namespace dml::nn
