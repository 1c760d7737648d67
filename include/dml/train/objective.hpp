// dml/train/objective.hpp: what a train::Learner minimises. With a head, the
// loss of a batch is cross_entropy(head(emb, labels), labels) plus
// sum_k w_k * extra_k(emb, labels); without one, the sum alone. Each extra
// term has a name (messages, checkpoints) and may ramp its weight up over the
// first part of a fit. The Learner never branches on which objective it has.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/tensor.hpp"
#include "../core/autograd.hpp"
#include "../core/collective.hpp"
#include "../data/dataset.hpp"
#include "../data/loader.hpp"
#include "../eval/embed.hpp"
#include "../eval/metrics.hpp"
#include "../losses/cross_entropy.hpp"
#include "../nn/module.hpp"
#include "../ops/common.hpp"

namespace dml::train::detail {

template <class T, class D>
class Objective {
 public:
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;
  using ModuleT = nn::Module<T, D>;

  // An extra loss: weight * fn(emb, labels), its weight ramped over the
  // fraction `warmup` of a fit's steps.
  struct Term {
    ModuleT* module;
    std::function<TensorT(const TensorT&, const Labels&)> fn;
    double weight, warmup;
    std::string name;
  };

  // No head: the extra terms alone (an empty head stands in for checkpoints).
  Objective() : own_head_(std::make_unique<NoHead>()), head_(own_head_.get()) {}
  // `head` (embeddings -> logits; one with operator()(emb, labels) gets the
  // labels in training) plus the extra terms. The head must outlive this.
  template <class Head>
    requires std::derived_from<Head, ModuleT>
  explicit Objective(Head& head) : head_(&head), has_head_(true) {
    logits_ = [&head](const TensorT& emb, const Labels* labels) -> TensorT {
      if constexpr (requires { head(emb, *labels); }) {
        if (labels) return head(emb, *labels);
      }
      return head(emb);
    };
    if constexpr (requires(std::int64_t n) { head.plan_schedule(n); })
      plan_head_ = [&head](std::int64_t steps) { head.plan_schedule(steps); };
  }

  bool has_head() const noexcept { return has_head_; }
  ModuleT& head() noexcept { return *head_; }
  bool empty() const noexcept { return !has_head_ && terms_.empty(); }
  // The head ("head.") and each term's module ("loss.<name>.") by checkpoint prefix.
  std::vector<std::pair<std::string, ModuleT*>> modules() const {
    std::vector<std::pair<std::string, ModuleT*>> out = {{"head.", head_}};
    for (const Term& e : terms_) out.emplace_back("loss." + e.name + ".", e.module);
    return out;
  }

  // See Learner::add_loss; `optimizer_built` refuses a term with parameters.
  template <class Loss>
  void add(Loss& extra, double weight, std::string name, double warmup, bool training, bool optimizer_built) {
    DML_CHECK(std::isfinite(weight) && weight >= 0, "Learner::add_loss: weight must be finite and >= 0, got ", weight);
    DML_CHECK(warmup >= 0 && warmup <= 1, "Learner::add_loss: warmup must lie in [0, 1], got ", warmup);
    if (name.empty()) name = "loss" + std::to_string(terms_.size());
    DML_CHECK(name.find('.') == std::string::npos, "Learner::add_loss: name '", name, "' must not contain '.'");
    for (const auto& e : terms_) DML_CHECK(e.name != name, "Learner::add_loss: a loss is already named '", name, "'");
    DML_CHECK(!optimizer_built || extra.num_parameters() == 0, "Learner::add_loss: '", name,
              "' has parameters, but the optimiser was already built: add losses before training");
    extra.train(training);
    terms_.push_back({&extra, [&extra](const TensorT& e, const Labels& y) -> TensorT { return extra(e, y); }, weight,
                      warmup, std::move(name)});
  }

  void train(bool training) {
    head_->train(training);
    for (auto& e : terms_) e.module->train(training);
  }
  // The head's plan_schedule(steps), when it has one.
  void plan(std::int64_t steps) {
    if (plan_head_) plan_head_(steps);
  }

  // Term `name`'s weight at optimiser step `step` of `total` (its warm-up
  // applied), or its full weight outside a fit. Throws for an unknown name.
  double weight(std::string_view name, bool in_fit, std::int64_t step, std::int64_t total) const {
    for (const auto& e : terms_)
      if (e.name == name) return in_fit ? weight_at(e, step, total) : e.weight;
    throw Error(::dml::detail::concat("Learner::loss_weight: no loss named '", name, "'"));
  }

  // The training loss of batch b (a graph) and its value, the one number read
  // back (on a GPU, the step's one copy to the host); only a non-finite loss
  // reads the terms one by one, and throws naming the epoch, the batch and the
  // first term that is not finite (else "the total").
  std::pair<TensorT, double> train_loss(const TensorT& emb, const Labels& y, double smoothing, std::int64_t step,
                                        std::int64_t total, const data::Batch& b) {
    TensorT loss;
    std::vector<std::pair<const char*, TensorT>> parts;
    if (has_head_) {
      loss = losses::cross_entropy(logits_(emb, &y), y, smoothing);
      parts.emplace_back("cross_entropy", loss);
    }
    for (auto& e : terms_) {
      TensorT term = e.fn(emb, y);
      const double w = weight_at(e, step, total);
      parts.emplace_back(e.name.c_str(), term);
      loss = loss.defined() ? loss + term * T(w) : term * T(w);
    }
    const double value = static_cast<double>(loss.item());
    if (!std::isfinite(value)) {
      for (const auto& [name, term] : parts) check_finite(static_cast<double>(term.item()), name, b);
      check_finite(value, "the total", b);
    }
    return {std::move(loss), value};
  }

  // The mean loss over ds (terms at full weight, their state not updated)
  // and the accuracy of the head's inference logits (NaN without a head), in
  // batches of `batch_size`, with body, head and terms in eval mode (each
  // gets its mode back) and no graph. Calls progress(batches done) after each
  // batch. With a collective of several ranks the batches are shared out
  // (rank r takes batches [r B / W, (r + 1) B / W) of the B) and the sums of
  // loss x rows and of correct rows all-reduced: every rank returns the whole
  // set's figures (the same batches as one process, the loss summed in another
  // order). Collective then. Throws dml::Error for an invalid dataset or
  // images the body does not take (see eval::embed), and NaN logits (argmax_rows).
  std::pair<double, double> evaluate(ModuleT& body, const data::Dataset& ds, std::int64_t batch_size,
                                     double smoothing, const std::function<void(std::int64_t)>& progress,
                                     Collective* comm = nullptr) {
    eval::detail::check_embed_input(body, ds, {.batch_size = batch_size});
    std::vector<ModuleT*> modules = {&body};
    for (auto& [prefix, m] : this->modules()) modules.push_back(m);
    eval::detail::EvalModeGuard<T, D> guard(modules);
    NoGrad no_grad;
    const std::int64_t n = ds.size();
    const Shard shard = shard_of(comm);
    const std::int64_t batches = (n + batch_size - 1) / batch_size;
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (std::int64_t b = shard.begin(batches); b < shard.end(batches); ++b) {
      const std::int64_t start = b * batch_size;
      const std::int64_t count = std::min(batch_size, n - start);
      const std::span<const std::int64_t> labels(ds.labels.data() + start, static_cast<std::size_t>(count));
      const Tensor<std::int64_t, Cpu> host = Tensor<std::int64_t, Cpu>::from_vector(
          std::vector<std::int64_t>(labels.begin(), labels.end()));
      const Labels y = host.template to<D>();
      const ::dml::detail::VouchedIndices<D> vouch(y, host);  // checked here, not again on the device
      const TensorT emb = body(eval::detail::image_batch<T, D>(ds, start, count));
      double loss = 0;
      if (has_head_) {
        const TensorT logits = logits_(emb, nullptr);
        loss = losses::cross_entropy(logits, y, smoothing).item();
        correct += std::llround(eval::accuracy_from_logits(logits, labels) * static_cast<double>(count));
      }
      for (auto& e : terms_) loss += e.weight * static_cast<double>(e.fn(emb, y).item());
      loss_sum += loss * static_cast<double>(count);
      if (progress) progress(b - shard.begin(batches) + 1);
    }
    if (shard.world > 1) {
      std::vector<double> sums = {loss_sum, static_cast<double>(correct)};
      comm->all_reduce_sum(std::span<double>(sums));
      loss_sum = sums[0];
      correct = static_cast<std::int64_t>(sums[1]);
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(n);
    return {loss_sum / static_cast<double>(n), has_head_ ? accuracy : std::numeric_limits<double>::quiet_NaN()};
  }

 private:
  // The head of an objective without one: no parameters, never called.
  struct NoHead : ModuleT {
    std::string type_name() const override { return "NoHead"; }
  };

  static double weight_at(const Term& e, std::int64_t step, std::int64_t total) {
    if (e.warmup <= 0) return e.weight;
    const double ramp = e.warmup * static_cast<double>(total);
    return e.weight * std::min(1.0, static_cast<double>(step + 1) / ramp);
  }
  static double check_finite(double v, const char* term, const data::Batch& b) {
    DML_CHECK(std::isfinite(v), "Learner: non-finite loss at epoch ", b.epoch, ", batch ", b.index, ": ", term, " = ",
              v, " (lower the learning rate or check the data; run the fit inside a dml::DetectAnomaly scope to name "
              "the op that made it)");
    return v;
  }

  std::unique_ptr<ModuleT> own_head_;
  ModuleT* head_;
  bool has_head_ = false;
  std::function<TensorT(const TensorT&, const Labels*)> logits_;
  std::function<void(std::int64_t)> plan_head_;
  std::vector<Term> terms_;
};

}  // namespace dml::train::detail
