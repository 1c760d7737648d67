// dml/train/options.hpp: what a train::Learner is configured with and what it
// reports: LearnerOptions (batches, augmentation, progress, checkpoints,
// freezing, per-prefix learning rates), what callbacks see (BatchInfo,
// Callback; the epoch rows, EpochStats, are in progress.hpp), the parameter
// groups that lr_scales make, and what freeze() leaves trainable.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/collective.hpp"
#include "../data/dataset.hpp"
#include "../data/loader.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"
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
  // Set: data-parallel training (docs/distributed.md), this learner being rank
  // collective->rank() of collective->size() (dml::distributed's
  // MpiCommunicator; it must outlive the learner). batch_size is then per rank:
  // each rank trains on its share of every global batch of batch_size x size()
  // rows, each fit starts from rank 0's parameters and buffers, gradients are
  // averaged before every step, Center Loss updates its centres from the
  // gathered batch, buffers (BatchNorm statistics) are rank 0's before each
  // validation, and only rank 0 prints and writes opts.checkpoint. Every rank
  // makes the same calls (fit, validate, callbacks that stop).
  Collective* collective = nullptr;
  // Data parallel: start all-reducing each bucket of gradients during the
  // backward pass once its gradients are final (GradientAverager::begin), where
  // the collective has an asynchronous channel (MPI and NCCL both have one); the
  // result is the same as reducing after the pass (docs/distributed.md).
  bool overlap_all_reduce = true;
  // Data parallel: the size of a gradient bucket.
  std::size_t bucket_bytes = std::size_t{25} << 20;
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

// `train` when it and the options can make a learner; throws dml::Error otherwise.
inline const data::Dataset& checked_options(const data::Dataset& train, const LearnerOptions& o) {
  DML_CHECK(!train.empty(), "Learner: the training set is empty");
  DML_CHECK(o.out != nullptr, "Learner: options.out is null");
  DML_CHECK(o.valid_batch_size >= 1, "Learner: valid_batch_size must be >= 1, got ", o.valid_batch_size);
  DML_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, "Learner: label_smoothing must lie in [0, 1], got ",
            o.label_smoothing);
  for (const LrScale& s : o.lr_scales)
    DML_CHECK(!s.prefix.empty() && std::isfinite(s.scale) && s.scale > 0, "LearnerOptions::lr_scales: prefix '",
              s.prefix, "' needs a non-empty prefix and a finite scale > 0, got ", s.scale);
  return train;
}

// optim::decay_groups of the parameters no lr scale matches first (group 0
// carries the optimiser's lr, which fit_one_cycle's max_lr refers to), then
// one pair per lr scale, in the order of `scales`, at base_lr * scale. Throws
// dml::Error for a prefix that matches no parameter.
template <class T, class D>
std::vector<optim::ParamGroup<T, D>> lr_scaled_groups(std::vector<optim::NamedParam<T, D>> params,
                                                      const std::vector<LrScale>& scales, double base_lr) {
  const std::size_t n = scales.size();
  std::vector<std::vector<optim::NamedParam<T, D>>> by_scale(n + 1);
  std::vector<bool> used(n, false);
  for (auto& p : params) {
    std::size_t k = n;
    for (std::size_t i = 0; i < n && k == n; ++i)
      if (p.first.rfind(scales[i].prefix, 0) == 0) k = i;
    if (k < n) used[k] = true;
    by_scale[k].push_back(std::move(p));
  }
  for (std::size_t i = 0; i < n; ++i)
    DML_CHECK(used[i], "LearnerOptions::lr_scales: prefix '", scales[i].prefix,
              "' matches no parameter (names start with body., head. or loss.<name>.)");
  std::vector<optim::ParamGroup<T, D>> groups = optim::decay_groups(std::move(by_scale[n]));
  for (std::size_t i = 0; i < n; ++i)
    if (!by_scale[i].empty())
      for (auto& g : optim::decay_groups(std::move(by_scale[i]), base_lr * scales[i].scale))
        groups.push_back(std::move(g));
  return groups;
}

// Freezes `body` as Learner::freeze documents: every parameter gets
// requires_grad false (and its gradient dropped) unless its name starts with
// one of o.trainable_when_frozen or, with o.train_bn, it belongs to a BatchNorm.
template <class T, class D>
void freeze_body(nn::Module<T, D>& body, const LearnerOptions& o) {
  std::vector<std::string> keep;
  if (o.train_bn)
    for (const auto& [prefix, m] : body.named_modules())
      if (m->type_name().rfind("BatchNorm", 0) == 0) keep.push_back(prefix);
  for (auto& [name, p] : body.named_parameters()) {
    bool trainable = false;
    for (const std::string& prefix : o.trainable_when_frozen) trainable |= name.rfind(prefix, 0) == 0;
    for (const std::string& bn : keep)
      if (name.compare(0, bn.size(), bn) == 0 && name.find('.', bn.size()) == std::string::npos) trainable = true;
    if (!trainable) {
      p.zero_grad();
      p.requires_grad_(false);
    }
  }
}

}  // namespace detail
}  // namespace dml::train
