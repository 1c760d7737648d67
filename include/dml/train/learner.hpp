// dml/train/learner.hpp: train::Learner, the training loop. It ties a body
// (embedding network), a head (logits from embeddings, margin in training),
// optional extra losses (Center Loss), data and an optimiser together:
//
//   train::Learner learn(body, head, data, optim::SGD{.lr = 0.05, .momentum = 0.9, .nesterov = true});
//   learn.add_loss(center, 1.0 / 8, "center", 0.5);  // weight ramped up over half of each fit
//   learn.fit_one_cycle(3);          // prints fastai's epoch table
//   // with a pretrained body: learn.freeze(); learn.fit_one_cycle(1); learn.unfreeze(); ...
//
// When a fit starts the head's plan_schedule(steps) is called if it has one
// (MarginHead<Sphere> fits its lambda schedule to the run).
//
// Loss of a batch = cross_entropy(head(body(x), y), y) + sum_k w_k * extra_k(body(x), y).
// Without a head (train::Learner learn(body, data, optimiser)) the objective is
// the sum alone: embedding losses such as losses::MultiSimilarity, with
// balanced batches (LearnerOptions::balanced) so that every batch has positives.
// A non-finite loss stops training with a dml::Error naming the epoch, the
// batch and the term. save_checkpoint / resume continue a run bit for bit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/collective.hpp"
#include "../core/tensor.hpp"
#include "../data/dataset.hpp"
#include "../data/loader.hpp"
#include "../eval/embed.hpp"
#include "../eval/metrics.hpp"
#include "../nn/module.hpp"
#include "../ops/common.hpp"
#include "../optim/optimizer.hpp"
#include "../optim/schedule.hpp"
#include "data_parallel.hpp"
#include "learner_checkpoint.hpp"
#include "objective.hpp"
#include "options.hpp"
#include "progress.hpp"

namespace dml::train {

// No default template arguments: class template argument deduction must go
// through the guides at the end of this file (T and D of the body), never fall
// back to <float, Cpu> for a GPU body (nvcc's front end would).
template <class T, class D>
class Learner {
 public:
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;
  using ModuleT = nn::Module<T, D>;

  // Trains `body` (images -> embeddings) with `head` (embeddings -> logits; a
  // head with operator()(emb, labels) gets the labels in training, as
  // heads::MarginHead does) on data.train, validating on data.test. The
  // optimiser options (optim::SGD, Adam, AdamW) are bound to the parameters of
  // body, head and extra losses when training starts, with no weight decay on
  // biases and BatchNorm (optim::default_groups). Body and head must outlive
  // the learner. Throws dml::Error for an empty training set or bad options.
  template <class Body, class Head, optim::Options O>
    requires std::derived_from<Body, ModuleT> && std::derived_from<Head, ModuleT>
  Learner(Body& body, Head& head, data::Splits data, O optimiser, LearnerOptions opts = {})
      : Learner(static_cast<ModuleT&>(body), detail::Objective<T, D>(head), std::move(data), optimiser,
                std::move(opts)) {}

  // A learner without a head: the objective is the sum of the losses given to
  // add_loss (embedding losses such as losses::MultiSimilarity<miners::MultiSimilarity>,
  // proxy losses, Center Loss). There are no logits: validation reports the
  // loss and no accuracy (#na#), predict() throws, and fit throws until a loss
  // was added.
  template <class Body, optim::Options O>
    requires std::derived_from<Body, ModuleT>
  Learner(Body& body, data::Splits data, O optimiser, LearnerOptions opts = {})
      : Learner(static_cast<ModuleT&>(body), detail::Objective<T, D>(), std::move(data), optimiser, std::move(opts)) {}

  Learner(const Learner&) = delete;
  Learner& operator=(const Learner&) = delete;

  // Adds weight * extra(embeddings, labels) to the loss (e.g. losses::CenterLoss
  // with weight 1/8). `name` labels the term in messages and checkpoints
  // (default "loss<k>"). With warmup > 0 the weight ramps linearly from 0 to
  // `weight` over that fraction of each fit's steps (then stays there); the
  // term's state (Center Loss's centres) is updated from the first step.
  // Throws dml::Error for a non-finite or negative weight, warmup outside
  // [0, 1], a repeated name, or once training has started when extra has
  // parameters (the optimiser already holds its parameter list).
  template <class Loss>
    requires std::derived_from<Loss, ModuleT> && requires(Loss& l, const TensorT& e, const Labels& y) {
      { l(e, y) } -> std::convertible_to<TensorT>;
    }
  void add_loss(Loss& extra, double weight, std::string name = "", double warmup = 0) {
    if constexpr (requires { extra.set_collective(opts_.collective); }) extra.set_collective(opts_.collective);
    objective_.add(extra, weight, std::move(name), warmup, body_.is_training(), optimizer_ != nullptr);
  }

  // Trains `epochs` epochs with the learning rate of each parameter group
  // shaped by `schedule` over the whole fit (Constant: the optimiser's lr).
  void fit(std::int64_t epochs, optim::Schedule schedule = optim::Constant{}) { start(epochs, schedule, {}); }

  // fastai's fit_one_cycle: warm-up then cosine annealing of the lr (and
  // inverse cycling of momentum / Adam's beta1) over `epochs` epochs, peaking
  // at max_lr (default: the optimiser's lr).
  void fit_one_cycle(std::int64_t epochs, std::optional<double> max_lr = {}, optim::OneCycle cycle = {}) {
    start(epochs, cycle, max_lr);
  }

  // Freezes the body except its trainable_when_frozen parameters and (with
  // train_bn) its BatchNorm parameters: the others get requires_grad false, so
  // no gradient is computed for them and the optimiser leaves them alone.
  void freeze() {
    detail::freeze_body(body_, opts_);
    run_.frozen = true;
  }
  // Makes every body parameter trainable again.
  void unfreeze() {
    for (auto& [name, p] : body_.named_parameters()) p.requires_grad_(true);
    run_.frozen = false;
  }
  bool frozen() const noexcept { return run_.frozen; }

  // Loss and accuracy of the inference logits on data.test (eval mode, no
  // graph; extra losses included, without updating their state). NaN when
  // there is no test set. Data parallel: each rank evaluates its share of the
  // batches and the sums are all-reduced (collective; the same figures on
  // every rank).
  EpochStats validate() {
    EpochStats s;
    s.epoch = loader_.epoch();
    const auto t0 = std::chrono::steady_clock::now();
    if (data_.test.empty()) {
      s.valid_loss = s.accuracy = std::numeric_limits<double>::quiet_NaN();
      return s;
    }
    const std::int64_t bs = opts_.valid_batch_size;
    ProgressBar bar(*opts_.out, silent() ? Progress::Quiet : bar_mode_for_inner());
    const std::int64_t batches = (data_.test.size() + bs - 1) / bs;
    const Shard shard = shard_of(opts_.collective);  // data parallel: each rank evaluates its share of the batches
    bar.start("valid", shard.end(batches) - shard.begin(batches));
    std::tie(s.valid_loss, s.accuracy) = objective_.evaluate(
        body_, data_.test, bs, opts_.label_smoothing, [&](std::int64_t done) { bar.update(done); }, opts_.collective);
    bar.finish();
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
  }

  // Inference logits [N, classes] of every image of ds, in order (eval mode, no graph).
  TensorT predict(const data::Dataset& ds) {
    DML_CHECK(objective_.has_head(), "Learner::predict: this learner has no head (an embedding-loss objective), so "
                                     "no logits; use eval::embed for the embeddings");
    DML_CHECK(!ds.empty(), "Learner::predict: empty dataset");
    const std::int64_t bs = opts_.valid_batch_size;
    ProgressBar bar(*opts_.out, silent() ? Progress::Quiet : bar_mode_for_inner());
    bar.start("predict", (ds.size() + bs - 1) / bs);
    auto progress = [&](std::int64_t done, std::int64_t) { bar.update((done + bs - 1) / bs); };
    TensorT logits =
        eval::detail::run_embed<T, D>(body_, &objective_.head(), ds, {.batch_size = bs, .progress = progress}).logits;
    bar.finish();
    return logits;
  }

  // The weight the next training step gives the extra loss `name` (its
  // warm-up applied; the full weight outside a fit). Throws dml::Error for an
  // unknown name.
  double loss_weight(std::string_view name) const {
    return objective_.weight(name, run_.plan.active, run_.plan.step, run_.plan.total);
  }

  // Stops training after the current batch (from a callback: early stopping).
  // The fit stays unfinished: a checkpoint taken now resumes it.
  void stop() noexcept { stop_ = true; }

  void add_callback(Callback<T, D> cb) { callbacks_.push_back(std::move(cb)); }

  // Epoch rows printed so far, including those of a resumed run.
  const std::vector<EpochStats>& history() const noexcept { return run_.history; }
  // Epochs completed (the data loader's epoch).
  std::int64_t epoch() const { return loader_.epoch(); }
  // The optimiser (built on first use).
  optim::Optimizer<T, D>& optimizer() { return opt(); }
  const data::Splits& data() const noexcept { return data_; }
  const LearnerOptions& options() const noexcept { return opts_; }

  // Writes everything a run depends on to `path` (see checkpoint.hpp):
  // weights and buffers of body, head and extra losses (Center Loss centers,
  // SphereFace's iteration), optimiser state, the fit's schedule and position,
  // the data loader's position, every module's random generators, frozen
  // state and history. Atomic; the previous file is kept as "<path>.prev".
  void save_checkpoint(const std::filesystem::path& path) {
    write_checkpoint(path, learner_checkpoint(parts(), run_));
  }

  // Restores everything save_checkpoint wrote into this learner, which must
  // have been built the same way (same modules, extra losses, optimiser rule
  // and data sizes). Throws dml::Error naming the file and every mismatch,
  // leaving the learner as it was.
  void load_checkpoint(const std::filesystem::path& path) {
    run_ = load_learner_checkpoint(parts(), path);
    if (run_.frozen) freeze();
    else unfreeze();
  }

  // load_checkpoint(path), then finishes the fit it interrupted (if any), so
  // that fit + save + resume in a new process ends exactly as the fit alone.
  void resume(const std::filesystem::path& path) {
    load_checkpoint(path);
    if (run_.plan.active) run();
  }

 private:
  template <optim::Options O>
  Learner(ModuleT& body, detail::Objective<T, D> objective, data::Splits data, O optimiser, LearnerOptions opts)
      : body_(body), objective_(std::move(objective)), data_(std::move(data)), opts_(std::move(opts)),
        loader_(detail::checked_options(data_.train, opts_),
                data::LoaderOptions{.batch_size = opts_.batch_size, .shuffle = true, .balanced = opts_.balanced,
                                    .drop_last = opts_.drop_last, .seed = opts_.seed, .prefetch = opts_.prefetch,
                                    .augment = opts_.augment, .shard = shard_of(opts_.collective)}),
        make_optimizer_([optimiser](std::vector<optim::ParamGroup<T, D>> groups) {
          return optim::make_unique(optimiser, std::move(groups));
        }),
        base_lr_(optimiser.lr) {
    optimiser.validate();
    if (opts_.collective) averager_.emplace(*opts_.collective, opts_.bucket_bytes);
  }
  // Rank 0 prints and writes; every rank when not data parallel.
  bool primary() const noexcept { return !opts_.collective || opts_.collective->rank() == 0; }
  bool silent() const noexcept { return opts_.quiet || !primary(); }

  void set_mode(bool training) {
    body_.train(training);
    objective_.train(training);
  }
  // Body, head and extra losses by checkpoint prefix ("body.", "head.", "loss.<name>.").
  std::vector<std::pair<std::string, ModuleT*>> named_modules() {
    std::vector<std::pair<std::string, ModuleT*>> out = objective_.modules();
    out.insert(out.begin(), {"body.", &body_});
    return out;
  }
  optim::Optimizer<T, D>& opt() {
    if (!optimizer_) {
      std::vector<optim::NamedParam<T, D>> params;
      for (auto& [prefix, m] : named_modules())
        for (auto& p : optim::named_params(*m, prefix)) params.push_back(std::move(p));
      optimizer_ = make_optimizer_(detail::lr_scaled_groups(std::move(params), opts_.lr_scales, base_lr_));
    }
    return *optimizer_;
  }
  // What a checkpoint holds the state of (learner_checkpoint.hpp).
  detail::CheckpointParts<T, D> parts() { return {named_modules(), &opt(), &loader_}; }

  // Validation passes are short: a bar on a terminal, no lines in logs.
  Progress bar_mode_for_inner() const {
    ProgressBar probe(*opts_.out, opts_.progress);
    return probe.mode() == Progress::Bar ? Progress::Bar : Progress::Quiet;
  }

  void start(std::int64_t epochs, const optim::Schedule& schedule, std::optional<double> max_lr) {
    DML_CHECK(epochs >= 1, "Learner::fit: epochs must be >= 1, got ", epochs);
    DML_CHECK(!objective_.empty(), "Learner::fit: a learner without a head trains the losses given to add_loss, and "
                                   "none was added");
    DML_CHECK(!max_lr || (std::isfinite(*max_lr) && *max_lr > 0), "Learner::fit_one_cycle: max_lr must be > 0, got ",
              max_lr.value_or(0));
    const std::int64_t nb = loader_.num_batches();
    run_.plan = FitPlan{true, schedule, max_lr, 0, epochs * nb - loader_.position(), loader_.epoch() + epochs};
    if (loader_.position() == 0) run_.loss_sum = 0, run_.loss_count = 0, run_.seconds = 0;
    objective_.plan(run_.plan.total);
    if (opts_.collective)
      for (auto& [prefix, m] : named_modules()) broadcast_state(*opts_.collective, *m);
    run();
  }

  // Sets each group's lr (and the momentum) for the plan's current step. With
  // max_lr, group g peaks at max_lr * base_lr(g) / (the optimiser's lr), so
  // groups keep their ratios (lr_scales); otherwise at its own base lr.
  void apply_schedule() {
    optim::Optimizer<T, D>& o = opt();
    const std::int64_t step = std::min(run_.plan.step, run_.plan.total);
    for (std::size_t g = 0; g < o.num_groups(); ++g) {
      double peak = o.base_lr(g);
      if (const auto& max_lr = run_.plan.max_lr) peak = base_lr_ > 0 ? *max_lr * o.base_lr(g) / base_lr_ : *max_lr;
      o.set_lr(g, optim::lr_at(run_.plan.schedule, step, run_.plan.total, peak));
    }
    const std::optional<double> m = optim::momentum_at(run_.plan.schedule, step, run_.plan.total);
    if (m && o.has_momentum()) o.set_momentum(*m);
  }

  void run() {
    stop_ = false;
    set_mode(true);
    const bool print = !silent();
    EpochTable table(*opts_.out, {"epoch", "train_loss", "valid_loss", "accuracy", "time"});
    if (print) table.header();
    ProgressBar bar(*opts_.out, silent() ? Progress::Quiet : opts_.progress);
    while (loader_.epoch() < run_.plan.end_epoch && !stop_) {
      const std::int64_t epoch = loader_.epoch(), nb = loader_.num_batches();
      const auto t0 = std::chrono::steady_clock::now();
      bar.start("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(run_.plan.end_epoch), nb);
      SmoothedLoss smooth;
      for (;;) {
        if (stop_ && loader_.position() < nb) break;  // a stop on the last batch still ends the epoch
        std::optional<data::Batch> b = loader_.next();
        if (!b) break;
        const double loss = train_batch(*b);
        run_.loss_sum += loss * static_cast<double>(step_rows_);
        run_.loss_count += step_rows_;
        smooth.add(loss);
        bar.update(b->index + 1, smooth.value());
        BatchInfo info{epoch, b->index, nb, run_.plan.step, run_.plan.total, loss, opt().lr(0)};
        for (auto& cb : callbacks_)
          if (cb.on_batch_end) cb.on_batch_end(*this, info);
      }
      run_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bar.finish();
      if (loader_.epoch() == epoch) break;  // stopped mid-epoch
      if (opts_.collective)  // rank 0's BatchNorm statistics (and other buffers) for evaluation
        for (auto& [prefix, m] : named_modules()) broadcast_buffers(*opts_.collective, *m);
      EpochStats s = validate();
      s.epoch = epoch;
      s.train_loss = run_.loss_sum / static_cast<double>(std::max<std::int64_t>(run_.loss_count, 1));
      s.seconds += run_.seconds;
      run_.loss_sum = 0, run_.loss_count = 0, run_.seconds = 0;
      run_.history.push_back(s);
      if (print)
        table.row({std::to_string(s.epoch), EpochTable::number(s.train_loss), cell(s.valid_loss), cell(s.accuracy),
                   format_time(s.seconds)});
      if (loader_.epoch() >= run_.plan.end_epoch) run_.plan.active = false;
      if (!opts_.checkpoint.empty() && primary()) save_checkpoint(opts_.checkpoint);
      for (auto& cb : callbacks_)
        if (cb.on_epoch_end) cb.on_epoch_end(*this, s);
    }
  }
  static std::string cell(double x) { return std::isfinite(x) ? EpochTable::number(x) : "#na#"; }

  // One optimiser step on batch b; returns its loss. On a GPU the loss is the one value the
  // step copies back (the labels are checked on the host, the heads keep their schedules there).
  double train_batch(const data::Batch& b) {
    optim::Optimizer<T, D>& o = opt();
    apply_schedule();
    const TensorT x = eval::detail::images_as<T, D>(b.images);
    const Labels y = b.labels.template to<D>();
    const ::dml::detail::VouchedIndices<D> vouch(y, b.labels);  // checked here, not again on the device
    auto [loss, value] = objective_.train_loss(body_(x), y, opts_.label_smoothing, run_.plan.step, run_.plan.total, b);
    o.zero_grad();
    step_rows_ = b.size();
    if (!averager_) {
      loss.backward();
    } else if (opts_.overlap_all_reduce) {  // data parallel: the global batch's gradient, loss and rows
      const GlobalBatch g = averager_->begin(o.params(), b.size(), value);
      {
        auto during = averager_->overlap();  // buckets start as the backward pass finishes their gradients
        loss.backward();
      }
      averager_->finish();
      value = g.loss, step_rows_ = g.rows;
    } else {
      loss.backward();
      const GlobalBatch g = averager_->reduce(o.params(), b.size(), value);
      value = g.loss, step_rows_ = g.rows;
    }
    o.step();
    ++run_.plan.step;
    return value;
  }

  ModuleT& body_;
  detail::Objective<T, D> objective_;
  data::Splits data_;
  LearnerOptions opts_;
  data::DataLoader loader_;
  std::function<std::unique_ptr<optim::Optimizer<T, D>>(std::vector<optim::ParamGroup<T, D>>)> make_optimizer_;
  double base_lr_ = 0;  // the optimiser's lr, which lr_scales multiply
  std::unique_ptr<optim::Optimizer<T, D>> optimizer_;
  std::vector<Callback<T, D>> callbacks_;
  RunState run_;  // the fit, the partial epoch, frozen and the history: what a checkpoint holds besides tensors
  bool stop_ = false;
  std::optional<GradientAverager<T, D>> averager_;  // with opts_.collective
  std::int64_t step_rows_ = 0;
};

namespace detail {
template <class Body>
using LearnerOf = Learner<typename eval::detail::ModuleTypesOf<Body>::value_type,
                          typename eval::detail::ModuleTypesOf<Body>::device_type>;
}  // namespace detail
template <class Body, class O>
  requires optim::Options<O>
Learner(Body&, data::Splits, O) -> detail::LearnerOf<Body>;
template <class Body, class O>
  requires optim::Options<O>
Learner(Body&, data::Splits, O, LearnerOptions) -> detail::LearnerOf<Body>;
template <class Body, class Head, class O>
Learner(Body&, Head&, data::Splits, O) -> detail::LearnerOf<Body>;
template <class Body, class Head, class O>
Learner(Body&, Head&, data::Splits, O, LearnerOptions) -> detail::LearnerOf<Body>;

}  // namespace dml::train
