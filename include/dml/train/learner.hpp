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
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/tensor.hpp"
#include "../data/dataset.hpp"
#include "../data/loader.hpp"
#include "../losses/cross_entropy.hpp"
#include "../nn/module.hpp"
#include "../nn/serialize.hpp"
#include "../ops/common.hpp"
#include "../optim/optimizer.hpp"
#include "../optim/schedule.hpp"
#include "checkpoint.hpp"
#include "progress.hpp"

namespace dml::train {

// Parameters whose name (body., head. or loss.<name>. prefixed) starts with
// `prefix` train at the optimiser's lr times `scale`: lower rates for the
// early layers of a pretrained body (fastai's discriminative learning rates).
struct LrScale {
  std::string prefix;
  double scale = 1.0;
};

// The transfer recipe's rates for nn::ResNet18: the stem and layer1 at
// `lowest` times the lr, layer2 at lowest^(2/3), layer3 at lowest^(1/3),
// layer4 and the heads at the full lr (geometric steps, as fastai's slice).
inline std::vector<LrScale> resnet_lr_scales(double lowest = 0.1) {
  return {{"body.conv1.", lowest},
          {"body.bn1.", lowest},
          {"body.layer1.", lowest},
          {"body.layer2.", std::pow(lowest, 2.0 / 3.0)},
          {"body.layer3.", std::pow(lowest, 1.0 / 3.0)}};
}

struct LearnerOptions {
  std::int64_t batch_size = 128;
  data::Augment augment = {};      // applied to training batches only
  std::uint64_t seed = 0;          // shuffle and augmentation
  bool drop_last = true;           // fastai's default for training batches
  bool prefetch = true;            // assemble the next batch on a background thread
  // Set: training batches are P classes x K samples (data::ClassBalanced);
  // batch_size must then be P * K and drop_last does not apply.
  std::optional<data::ClassBalanced> balanced = std::nullopt;
  double label_smoothing = 0;      // for the cross-entropy term
  std::int64_t valid_batch_size = 256;
  bool quiet = false;              // print nothing (no table, no progress)
  Progress progress = Progress::Auto;
  std::ostream* out = &std::cout;  // where the table and progress go
  // When set, a checkpoint is written there after every epoch.
  std::filesystem::path checkpoint = {};
  // freeze() leaves these body parameters trainable: names starting with one
  // of the prefixes (the embedding head of nn::ResNet18, a torchvision fc)
  // and, with train_bn (fastai's default), every BatchNorm parameter.
  std::vector<std::string> trainable_when_frozen = {"head.", "fc."};
  bool train_bn = true;
  // Per-prefix lr multipliers (first match wins; others train at the full lr),
  // e.g. resnet_lr_scales() once a pretrained body is unfrozen. Each prefix
  // must match some parameter; the schedule scales every group alike.
  std::vector<LrScale> lr_scales = {};
};

// One row of the epoch table. valid_loss and accuracy are NaN without a test set.
struct EpochStats {
  std::int64_t epoch = 0;
  double train_loss = 0, valid_loss = 0, accuracy = 0, seconds = 0;
};

// What a batch-end callback sees.
struct BatchInfo {
  std::int64_t epoch = 0, batch = 0, batches = 0;  // batch index within the epoch, of `batches`
  std::int64_t step = 0, total_steps = 0;          // position in the current fit
  double loss = 0, lr = 0;                         // the batch's loss; the lr of group 0
};

template <class T, class D>
class Learner;

// Callbacks run after each training batch and after each epoch's table row.
// They may call learn.stop() (early stopping), save a checkpoint, or read
// anything from the learner.
template <class T, class D>
struct Callback {
  std::function<void(Learner<T, D>&, const BatchInfo&)> on_batch_end;
  std::function<void(Learner<T, D>&, const EpochStats&)> on_epoch_end;
};

namespace detail {

template <class T, class D>
std::pair<T, D> module_types(const nn::Module<T, D>*);  // declaration only: deduces T and D

template <class M>
using ModuleTypes = decltype(module_types(std::declval<const M*>()));

// A batch's images as Tensor<T, D> (a device copy; a conversion for double).
template <class T, class D>
Tensor<T, D> images_as(const Tensor<float, Cpu>& x) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (std::is_same_v<D, Cpu>) return x;
    else return x.template to<D>();
  } else {
    std::vector<float> v = x.to_vector();
    return Tensor<T, D>::from_vector(std::vector<T>(v.begin(), v.end()), x.shape());
  }
}

template <class D>
Tensor<std::int64_t, D> labels_as(const Tensor<std::int64_t, Cpu>& y) {
  if constexpr (std::is_same_v<D, Cpu>) return y;
  else return y.template to<D>();
}

}  // namespace detail

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
      : Learner(static_cast<ModuleT&>(body), &head, nullptr, std::move(data), optimiser, std::move(opts)) {
    head_logits_ = [&head](const TensorT& emb, const Labels* labels) -> TensorT {
      if constexpr (requires { head(emb, *labels); }) {
        if (labels) return head(emb, *labels);
      }
      return head(emb);
    };
    if constexpr (requires(std::int64_t n) { head.plan_schedule(n); })
      plan_head_ = [&head](std::int64_t steps) { head.plan_schedule(steps); };
  }

  // A learner without a head: the objective is the sum of the losses given to
  // add_loss (embedding losses such as losses::MultiSimilarity<miners::MultiSimilarity>,
  // proxy losses, Center Loss). There are no logits: validation reports the
  // loss and no accuracy (#na#), predict() throws, and fit throws until a loss
  // was added.
  template <class Body, optim::Options O>
    requires std::derived_from<Body, ModuleT>
  Learner(Body& body, data::Splits data, O optimiser, LearnerOptions opts = {})
      : Learner(static_cast<ModuleT&>(body), nullptr, std::make_unique<NoHead>(), std::move(data), optimiser,
                std::move(opts)) {}

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
    DML_CHECK(std::isfinite(weight) && weight >= 0, "Learner::add_loss: weight must be finite and >= 0, got ", weight);
    DML_CHECK(warmup >= 0 && warmup <= 1, "Learner::add_loss: warmup must lie in [0, 1], got ", warmup);
    if (name.empty()) name = "loss" + std::to_string(extras_.size());
    DML_CHECK(name.find('.') == std::string::npos, "Learner::add_loss: name '", name, "' must not contain '.'");
    for (const auto& e : extras_) DML_CHECK(e.name != name, "Learner::add_loss: a loss is already named '", name, "'");
    DML_CHECK(!optimizer_ || extra.num_parameters() == 0, "Learner::add_loss: '", name,
              "' has parameters, but the optimiser was already built: add losses before training");
    extra.train(body_.is_training());
    extras_.push_back({&extra, [&extra](const TensorT& e, const Labels& y) -> TensorT { return extra(e, y); },
                       weight, warmup, std::move(name)});
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
    std::vector<std::string> keep;
    if (opts_.train_bn)
      for (const auto& [prefix, m] : body_.named_modules())
        if (m->type_name().rfind("BatchNorm", 0) == 0) keep.push_back(prefix);
    for (auto& [name, p] : body_.named_parameters()) {
      bool trainable = nn::detail::has_prefix(name, opts_.trainable_when_frozen);
      for (const std::string& bn : keep)
        if (name.compare(0, bn.size(), bn) == 0 && name.find('.', bn.size()) == std::string::npos) trainable = true;
      if (!trainable) {
        p.zero_grad();
        p.requires_grad_(false);
      }
    }
    frozen_ = true;
  }
  // Makes every body parameter trainable again.
  void unfreeze() {
    for (auto& [name, p] : body_.named_parameters()) p.requires_grad_(true);
    frozen_ = false;
  }
  bool frozen() const noexcept { return frozen_; }

  // Loss and accuracy of the inference logits on data.test (eval mode, no
  // graph; extra losses included, without updating their state). NaN when
  // there is no test set.
  EpochStats validate() {
    EpochStats s;
    s.epoch = loader_.epoch();
    const auto t0 = std::chrono::steady_clock::now();
    if (data_.test.empty()) {
      s.valid_loss = s.accuracy = std::numeric_limits<double>::quiet_NaN();
      return s;
    }
    ModeGuard guard(*this, false);
    NoGrad no_grad;
    double loss_sum = 0;
    std::int64_t correct = 0, n = 0;
    for_each_batch(data_.test, "valid", [&](const data::Batch& b, const TensorT& emb, const Labels& y) {
      double loss = 0;
      if (has_head_) {
        TensorT logits = head_logits_(emb, nullptr);
        loss = losses::cross_entropy(logits, y, opts_.label_smoothing).item();
        correct += count_correct(logits, b.labels);
      }
      for (auto& e : extras_) loss += e.weight * static_cast<double>(e.fn(emb, y).item());
      loss_sum += loss * static_cast<double>(b.size());
      n += b.size();
    });
    s.valid_loss = loss_sum / static_cast<double>(n);
    s.accuracy = has_head_ ? static_cast<double>(correct) / static_cast<double>(n)
                           : std::numeric_limits<double>::quiet_NaN();
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
  }

  // Inference logits [N, classes] of every image of ds, in order (eval mode, no graph).
  TensorT predict(const data::Dataset& ds) {
    DML_CHECK(has_head_, "Learner::predict: this learner has no head (an embedding-loss objective), so no logits; "
                         "use eval::embed for the embeddings");
    DML_CHECK(!ds.empty(), "Learner::predict: empty dataset");
    ModeGuard guard(*this, false);
    NoGrad no_grad;
    std::vector<T> out;
    std::int64_t classes = 0;
    for_each_batch(ds, "predict", [&](const data::Batch&, const TensorT& emb, const Labels&) {
      TensorT logits = head_logits_(emb, nullptr);
      classes = logits.dim(1);
      std::vector<T> v = logits.to_vector();
      out.insert(out.end(), v.begin(), v.end());
    });
    return Tensor<T, Cpu>::from_vector(out, Shape{ds.size(), classes}).template to<D>();
  }

  // The weight the next training step gives the extra loss `name` (its
  // warm-up applied; the full weight outside a fit). Throws dml::Error for an
  // unknown name.
  double loss_weight(std::string_view name) const {
    for (const auto& e : extras_)
      if (e.name == name) return plan_.active ? weight_now(e) : e.weight;
    throw Error(::dml::detail::concat("Learner::loss_weight: no loss named '", name, "'"));
  }

  // Stops training after the current batch (from a callback: early stopping).
  // The fit stays unfinished: a checkpoint taken now resumes it.
  void stop() noexcept { stop_ = true; }

  void add_callback(Callback<T, D> cb) { callbacks_.push_back(std::move(cb)); }

  // Epoch rows printed so far, including those of a resumed run.
  const std::vector<EpochStats>& history() const noexcept { return history_; }
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
    CheckpointFile f;
    nn::append_tensor_map(body_.state_dict(), "body.", f.tensors);
    nn::append_tensor_map(head_->state_dict(), "head.", f.tensors);
    for (const auto& e : extras_) nn::append_tensor_map(e.module->state_dict(), "loss." + e.name + ".", f.tensors);
    nn::append_tensor_map(opt().state_dict(), "optim.", f.tensors);
    auto& m = f.metadata;
    m["dml.element"] = element_name();
    m["dml.optimizer"] = opt().name();
    m["dml.loader"] = json::dump(to_json(loader_.state()));
    json::Object gens;
    for_each_generator([&](const std::string& name, Generator& g) { gens.emplace_back(name, to_json(g.state())); });
    m["dml.generators"] = json::dump(gens);
    json::Object plan;
    plan.emplace_back("active", plan_.active);
    plan.emplace_back("schedule", to_json(plan_.schedule));
    plan.emplace_back("max_lr", plan_.max_lr ? json::Value(*plan_.max_lr) : json::Value(nullptr));
    plan.emplace_back("step", plan_.step);
    plan.emplace_back("total", plan_.total);
    plan.emplace_back("end_epoch", plan_.end_epoch);
    plan.emplace_back("loss_sum", epoch_loss_sum_);
    plan.emplace_back("loss_count", epoch_loss_count_);
    plan.emplace_back("seconds", epoch_seconds_);
    m["dml.plan"] = json::dump(plan);
    m["dml.frozen"] = frozen_ ? "true" : "false";
    json::Array hist;
    for (const EpochStats& s : history_) hist.push_back(json::Array{s.epoch, finite_or_null(s.train_loss),
                                                                    finite_or_null(s.valid_loss),
                                                                    finite_or_null(s.accuracy), s.seconds});
    m["dml.history"] = json::dump(hist);
    write_checkpoint(path, std::move(f));
  }

  // Restores everything save_checkpoint wrote into this learner, which must
  // have been built the same way (same modules, extra losses, optimiser rule
  // and data sizes). Throws dml::Error naming the file and every mismatch,
  // leaving the learner as it was.
  void load_checkpoint(const std::filesystem::path& path) {
    const std::string file = path.string();
    CheckpointFile f = read_checkpoint(path);
    // Parse and check everything before touching any state.
    DML_CHECK(f.metadata["dml.element"] == element_name(), file, ": checkpoint holds ", f.metadata["dml.element"],
              " weights, this learner trains ", element_name());
    DML_CHECK(f.metadata["dml.optimizer"] == opt().name(), file, ": checkpoint was written by a ",
              f.metadata["dml.optimizer"], " optimiser, this learner uses ", opt().name());
    const data::LoaderState ls = loader_state_from_json(detail::meta_json(f, "dml.loader", file));
    const json::Value gens = detail::meta_json(f, "dml.generators", file);
    const json::Value plan = detail::meta_json(f, "dml.plan", file);
    const json::Value hist = detail::meta_json(f, "dml.history", file);
    std::vector<std::string> prefixes = {"body.", "head.", "optim."};
    for (const auto& e : extras_) prefixes.push_back("loss." + e.name + ".");
    for (const auto& [name, t] : f.tensors)
      DML_CHECK(nn::detail::has_prefix(name, prefixes), file, ": unexpected tensor '", name,
                "' (a checkpoint of a learner with other extra losses?)");
    Plan new_plan{plan.at("active").as_bool(), schedule_from_json(plan.at("schedule")),
                  plan.at("max_lr").is_null() ? std::nullopt : std::optional<double>(plan.at("max_lr").as_double()),
                  plan.at("step").as_int(), plan.at("total").as_int(), plan.at("end_epoch").as_int()};
    std::vector<std::pair<Generator*, Generator::State>> gen_states;
    for_each_generator([&](const std::string& name, Generator& g) {
      const json::Value* v = gens.find(name);
      DML_CHECK(v, file, ": checkpoint has no state for generator '", name, "'");
      gen_states.emplace_back(&g, generator_state_from_json(*v));
    });
    std::vector<EpochStats> new_hist;
    for (const json::Value& r : hist.as_array()) {
      const json::Array& a = r.as_array();
      DML_CHECK(a.size() == 5, file, ": a history row must hold 5 values");
      new_hist.push_back({a[0].as_int(), number_or_nan(a[1]), number_or_nan(a[2]), number_or_nan(a[3]),
                          a[4].as_double()});
    }

    // Apply, rolling back to a snapshot if any part is refused.
    CheckpointFile backup;
    nn::append_tensor_map(body_.state_dict(), "body.", backup.tensors);
    nn::append_tensor_map(head_->state_dict(), "head.", backup.tensors);
    for (const auto& e : extras_) nn::append_tensor_map(e.module->state_dict(), "loss." + e.name + ".", backup.tensors);
    nn::append_tensor_map(opt().state_dict(), "optim.", backup.tensors);
    const data::LoaderState old_loader = loader_.state();
    auto apply = [&](const io::TensorMap& tensors, const data::LoaderState& loader_state) {
      body_.load_state_dict(nn::state_dict_from<T, D>(tensors, "body."));
      head_->load_state_dict(nn::state_dict_from<T, D>(tensors, "head."));
      for (const auto& e : extras_)
        e.module->load_state_dict(nn::state_dict_from<T, D>(tensors, "loss." + e.name + "."));
      opt().load_state_dict(nn::state_dict_from<T, D>(tensors, "optim."));
      loader_.set_state(loader_state);
    };
    try {
      apply(f.tensors, ls);
    } catch (const Error& e) {
      apply(backup.tensors, old_loader);
      throw Error(::dml::detail::concat(file, ": ", e.message()));
    }
    for (auto& [g, st] : gen_states) g->set_state(st);
    plan_ = new_plan;
    epoch_loss_sum_ = plan.at("loss_sum").as_double();
    epoch_loss_count_ = plan.at("loss_count").as_int();
    epoch_seconds_ = plan.at("seconds").as_double();
    history_ = std::move(new_hist);
    if (f.metadata["dml.frozen"] == "true") freeze();
    else unfreeze();
  }

  // load_checkpoint(path), then finishes the fit it interrupted (if any), so
  // that fit + save + resume in a new process ends exactly as the fit alone.
  void resume(const std::filesystem::path& path) {
    load_checkpoint(path);
    if (plan_.active) run();
  }

 private:
  // The head of a learner built without one: no parameters, never called.
  struct NoHead : ModuleT {
    std::string type_name() const override { return "NoHead"; }
  };

  template <optim::Options O>
  Learner(ModuleT& body, ModuleT* head, std::unique_ptr<ModuleT> own_head, data::Splits data, O optimiser,
          LearnerOptions opts)
      : body_(body), own_head_(std::move(own_head)), head_(head ? head : own_head_.get()),
        has_head_(head != nullptr), data_(std::move(data)), opts_(std::move(opts)),
        loader_(checked(data_.train, opts_),
                data::LoaderOptions{.batch_size = opts_.batch_size, .shuffle = true, .balanced = opts_.balanced,
                                    .drop_last = opts_.drop_last, .seed = opts_.seed, .prefetch = opts_.prefetch,
                                    .augment = opts_.augment}),
        make_optimizer_([optimiser](std::vector<optim::ParamGroup<T, D>> groups) {
          return optim::make_unique(optimiser, std::move(groups));
        }),
        base_lr_(optimiser.lr) {
    optimiser.validate();
    for (const LrScale& s : opts_.lr_scales)
      DML_CHECK(!s.prefix.empty() && std::isfinite(s.scale) && s.scale > 0, "LearnerOptions::lr_scales: prefix '",
                s.prefix, "' needs a non-empty prefix and a finite scale > 0, got ", s.scale);
  }

  struct Extra {
    ModuleT* module;
    std::function<TensorT(const TensorT&, const Labels&)> fn;
    double weight, warmup;
    std::string name;
  };
  // The fit under way: lr schedule over `total` optimiser steps, ending when
  // the loader reaches `end_epoch`.
  struct Plan {
    bool active = false;
    optim::Schedule schedule = optim::Constant{};
    std::optional<double> max_lr;
    std::int64_t step = 0, total = 1, end_epoch = 0;
  };
  // Sets train/eval mode on every module for a scope, then restores it.
  struct ModeGuard {
    ModeGuard(Learner& l, bool training) : l(l), was(l.body_.is_training()) { l.set_mode(training); }
    ~ModeGuard() { l.set_mode(was); }
    Learner& l;
    bool was;
  };

  static const data::Dataset& checked(const data::Dataset& train, const LearnerOptions& o) {
    DML_CHECK(!train.empty(), "Learner: the training set is empty");
    DML_CHECK(o.out != nullptr, "Learner: options.out is null");
    DML_CHECK(o.valid_batch_size >= 1, "Learner: valid_batch_size must be >= 1, got ", o.valid_batch_size);
    DML_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, "Learner: label_smoothing must lie in [0, 1], got ",
              o.label_smoothing);
    return train;
  }
  static const char* element_name() { return std::is_same_v<T, float> ? "float" : "double"; }
  static json::Value finite_or_null(double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); }
  static double number_or_nan(const json::Value& v) {
    return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.as_double();
  }

  void set_mode(bool training) {
    body_.train(training);
    head_->train(training);
    for (auto& e : extras_) e.module->train(training);
  }

  optim::Optimizer<T, D>& opt() {
    if (!optimizer_) {
      std::vector<optim::NamedParam<T, D>> params = optim::named_params(body_, "body.");
      for (auto& p : optim::named_params(*head_, "head.")) params.push_back(std::move(p));
      for (const auto& e : extras_)
        for (auto& p : optim::named_params(*e.module, "loss." + e.name + ".")) params.push_back(std::move(p));
      optimizer_ = make_optimizer_(scaled_groups(std::move(params)));
    }
    return *optimizer_;
  }

  // decay_groups of the unscaled parameters first (group 0 carries the
  // optimiser's lr, which fit_one_cycle's max_lr refers to), then one pair per
  // lr scale, in the order of opts_.lr_scales.
  std::vector<optim::ParamGroup<T, D>> scaled_groups(std::vector<optim::NamedParam<T, D>> params) const {
    const std::size_t n = opts_.lr_scales.size();
    std::vector<std::vector<optim::NamedParam<T, D>>> by_scale(n + 1);
    std::vector<bool> used(n, false);
    for (auto& p : params) {
      std::size_t k = n;
      for (std::size_t i = 0; i < n && k == n; ++i)
        if (p.first.rfind(opts_.lr_scales[i].prefix, 0) == 0) k = i;
      if (k < n) used[k] = true;
      by_scale[k].push_back(std::move(p));
    }
    for (std::size_t i = 0; i < n; ++i)
      DML_CHECK(used[i], "LearnerOptions::lr_scales: prefix '", opts_.lr_scales[i].prefix,
                "' matches no parameter (names start with body., head. or loss.<name>.)");
    std::vector<optim::ParamGroup<T, D>> groups = optim::decay_groups(std::move(by_scale[n]));
    for (std::size_t i = 0; i < n; ++i)
      if (!by_scale[i].empty())
        for (auto& g : optim::decay_groups(std::move(by_scale[i]), base_lr_ * opts_.lr_scales[i].scale))
          groups.push_back(std::move(g));
    return groups;
  }

  template <class F>
  void for_each_generator(F&& f) {
    for (auto& [name, g] : body_.named_generators()) f("body." + name, *g);
    for (auto& [name, g] : head_->named_generators()) f("head." + name, *g);
    for (auto& e : extras_)
      for (auto& [name, g] : e.module->named_generators()) f("loss." + e.name + "." + name, *g);
  }

  // Runs f(batch, embeddings, labels) over ds in order, in batches of valid_batch_size.
  template <class F>
  void for_each_batch(const data::Dataset& ds, const char* label, F&& f) {
    data::DataLoader loader(ds, {.batch_size = opts_.valid_batch_size, .shuffle = false, .prefetch = true});
    ProgressBar bar(*opts_.out, opts_.quiet ? Progress::Quiet : bar_mode_for_inner());
    bar.start(label, loader.num_batches());
    std::int64_t done = 0;
    for (const data::Batch& b : loader) {
      TensorT emb = body_(detail::images_as<T, D>(b.images));
      const Labels y = detail::labels_as<D>(b.labels);
      const ::dml::detail::VouchedIndices<D> vouch(y, b.labels);  // checked here, not again on the device
      f(b, emb, y);
      bar.update(++done);
    }
    bar.finish();
  }
  // Validation passes are short: a bar on a terminal, no lines in logs.
  Progress bar_mode_for_inner() const {
    ProgressBar probe(*opts_.out, opts_.progress);
    return probe.mode() == Progress::Bar ? Progress::Bar : Progress::Quiet;
  }

  static std::int64_t count_correct(const TensorT& logits, const Tensor<std::int64_t, Cpu>& labels) {
    const std::vector<T> v = logits.to_vector();
    const std::vector<std::int64_t> y = labels.to_vector();
    const std::int64_t c = logits.dim(1);
    std::int64_t correct = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      const T* row = v.data() + static_cast<std::int64_t>(i) * c;
      correct += (std::max_element(row, row + c) - row) == y[i];
    }
    return correct;
  }

  void start(std::int64_t epochs, const optim::Schedule& schedule, std::optional<double> max_lr) {
    DML_CHECK(epochs >= 1, "Learner::fit: epochs must be >= 1, got ", epochs);
    DML_CHECK(has_head_ || !extras_.empty(), "Learner::fit: a learner without a head trains the losses given to "
                                             "add_loss, and none was added");
    DML_CHECK(!max_lr || (std::isfinite(*max_lr) && *max_lr > 0), "Learner::fit_one_cycle: max_lr must be > 0, got ",
              max_lr.value_or(0));
    const std::int64_t nb = loader_.num_batches();
    plan_ = Plan{true, schedule, max_lr, 0, epochs * nb - loader_.position(), loader_.epoch() + epochs};
    if (loader_.position() == 0) epoch_loss_sum_ = 0, epoch_loss_count_ = 0, epoch_seconds_ = 0;
    if (plan_head_) plan_head_(plan_.total);
    run();
  }

  // Sets each group's lr (and the momentum) for the plan's current step. With
  // max_lr, group g peaks at max_lr * base_lr(g) / (the optimiser's lr), so
  // groups keep their ratios (lr_scales); otherwise at its own base lr.
  void apply_schedule() {
    optim::Optimizer<T, D>& o = opt();
    const std::int64_t step = std::min(plan_.step, plan_.total);
    for (std::size_t g = 0; g < o.num_groups(); ++g) {
      double peak = o.base_lr(g);
      if (plan_.max_lr) peak = base_lr_ > 0 ? *plan_.max_lr * o.base_lr(g) / base_lr_ : *plan_.max_lr;
      o.set_lr(g, optim::lr_at(plan_.schedule, step, plan_.total, peak));
    }
    if (auto m = optim::momentum_at(plan_.schedule, step, plan_.total); m && o.has_momentum()) o.set_momentum(*m);
  }

  void run() {
    stop_ = false;
    set_mode(true);
    const bool print = !opts_.quiet;
    EpochTable table(*opts_.out, {"epoch", "train_loss", "valid_loss", "accuracy", "time"});
    if (print) table.header();
    ProgressBar bar(*opts_.out, opts_.quiet ? Progress::Quiet : opts_.progress);
    while (loader_.epoch() < plan_.end_epoch && !stop_) {
      const std::int64_t epoch = loader_.epoch(), nb = loader_.num_batches();
      const auto t0 = std::chrono::steady_clock::now();
      bar.start("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(plan_.end_epoch), nb);
      SmoothedLoss smooth;
      for (;;) {
        if (stop_ && loader_.position() < nb) break;  // a stop on the last batch still ends the epoch
        std::optional<data::Batch> b = loader_.next();
        if (!b) break;
        const double loss = train_batch(*b);
        epoch_loss_sum_ += loss * static_cast<double>(b->size());
        epoch_loss_count_ += b->size();
        smooth.add(loss);
        bar.update(b->index + 1, smooth.value());
        BatchInfo info{epoch, b->index, nb, plan_.step, plan_.total, loss, opt().lr(0)};
        for (auto& cb : callbacks_)
          if (cb.on_batch_end) cb.on_batch_end(*this, info);
      }
      epoch_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bar.finish();
      if (loader_.epoch() == epoch) break;  // stopped mid-epoch
      EpochStats s = validate();
      s.epoch = epoch;
      s.train_loss = epoch_loss_sum_ / static_cast<double>(std::max<std::int64_t>(epoch_loss_count_, 1));
      s.seconds += epoch_seconds_;
      epoch_loss_sum_ = 0, epoch_loss_count_ = 0, epoch_seconds_ = 0;
      history_.push_back(s);
      if (print)
        table.row({std::to_string(s.epoch), EpochTable::number(s.train_loss), cell(s.valid_loss), cell(s.accuracy),
                   format_time(s.seconds)});
      if (loader_.epoch() >= plan_.end_epoch) plan_.active = false;
      if (!opts_.checkpoint.empty()) save_checkpoint(opts_.checkpoint);
      for (auto& cb : callbacks_)
        if (cb.on_epoch_end) cb.on_epoch_end(*this, s);
    }
  }
  static std::string cell(double x) { return std::isfinite(x) ? EpochTable::number(x) : "#na#"; }

  // One optimiser step on batch b; returns its loss. On a GPU the loss is the one value the
  // step copies back (the labels are checked on the host, the heads keep their schedules there);
  // only a non-finite loss reads the terms one by one, to name the one that broke.
  double train_batch(const data::Batch& b) {
    optim::Optimizer<T, D>& o = opt();
    apply_schedule();
    const TensorT x = detail::images_as<T, D>(b.images);
    const Labels y = detail::labels_as<D>(b.labels);
    const ::dml::detail::VouchedIndices<D> vouch(y, b.labels);
    TensorT emb = body_(x);
    TensorT loss;
    std::vector<std::pair<const char*, TensorT>> terms;
    if (has_head_) {
      loss = losses::cross_entropy(head_logits_(emb, &y), y, opts_.label_smoothing);
      terms.emplace_back("cross_entropy", loss);
    }
    for (auto& e : extras_) {
      TensorT term = e.fn(emb, y);
      const double w = weight_now(e);
      terms.emplace_back(e.name.c_str(), term);
      loss = loss.defined() ? loss + term * T(w) : term * T(w);
    }
    const double value = static_cast<double>(loss.item());
    if (!std::isfinite(value)) {
      for (const auto& [name, term] : terms) check_finite(static_cast<double>(term.item()), name, b);
      check_finite(value, "the total", b);
    }
    o.zero_grad();
    loss.backward();
    o.step();
    ++plan_.step;
    return value;
  }
  // An extra loss's weight at the plan's current step (its warm-up ramp).
  double weight_now(const Extra& e) const {
    if (e.warmup <= 0) return e.weight;
    const double ramp = e.warmup * static_cast<double>(plan_.total);
    return e.weight * std::min(1.0, static_cast<double>(plan_.step + 1) / ramp);
  }
  double check_finite(double v, const char* term, const data::Batch& b) const {
    DML_CHECK(std::isfinite(v), "Learner: non-finite loss at epoch ", b.epoch, ", batch ", b.index, ": ", term, " = ",
              v, " (lower the learning rate or check the data; run the fit inside a dml::DetectAnomaly scope to name "
              "the op that made it)");
    return v;
  }

  ModuleT& body_;
  std::unique_ptr<ModuleT> own_head_;  // the empty head of a learner built without one
  ModuleT* head_;
  bool has_head_;
  std::function<TensorT(const TensorT&, const Labels*)> head_logits_;
  std::function<void(std::int64_t)> plan_head_;  // the head's plan_schedule(steps), when it has one
  std::vector<Extra> extras_;
  data::Splits data_;
  LearnerOptions opts_;
  data::DataLoader loader_;
  std::function<std::unique_ptr<optim::Optimizer<T, D>>(std::vector<optim::ParamGroup<T, D>>)> make_optimizer_;
  double base_lr_ = 0;  // the optimiser's lr, which lr_scales multiply
  std::unique_ptr<optim::Optimizer<T, D>> optimizer_;
  std::vector<Callback<T, D>> callbacks_;
  std::vector<EpochStats> history_;
  Plan plan_;
  double epoch_loss_sum_ = 0, epoch_seconds_ = 0;
  std::int64_t epoch_loss_count_ = 0;
  bool frozen_ = false, stop_ = false;
};

template <class Body, class O>
  requires optim::Options<O>
Learner(Body&, data::Splits, O)
    -> Learner<typename detail::ModuleTypes<Body>::first_type, typename detail::ModuleTypes<Body>::second_type>;
template <class Body, class O>
  requires optim::Options<O>
Learner(Body&, data::Splits, O, LearnerOptions)
    -> Learner<typename detail::ModuleTypes<Body>::first_type, typename detail::ModuleTypes<Body>::second_type>;
template <class Body, class Head, class O>
Learner(Body&, Head&, data::Splits, O)
    -> Learner<typename detail::ModuleTypes<Body>::first_type, typename detail::ModuleTypes<Body>::second_type>;
template <class Body, class Head, class O>
Learner(Body&, Head&, data::Splits, O, LearnerOptions)
    -> Learner<typename detail::ModuleTypes<Body>::first_type, typename detail::ModuleTypes<Body>::second_type>;

}  // namespace dml::train
