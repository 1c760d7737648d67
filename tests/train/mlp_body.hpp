// tests/train/mlp_body.hpp: the small body the Learner and checkpoint tests train.
// It holds every kind of state a checkpoint must carry: weights, BatchNorm running
// statistics and a dropout generator.
#pragma once

#include <cstdint>

#include <vector>

#include "dml/core/random.hpp"
#include "dml/data/dataset.hpp"
#include "dml/nn/nn.hpp"

namespace dml::testing {

struct MlpShape {
  std::int64_t in, hidden, out;
  double dropout;
  std::uint64_t weight_seed, dropout_seed;
};

// flatten -> fc1 -> relu -> bn -> drop -> fc2
struct MlpBody : nn::Module<float, Cpu> {
  explicit MlpBody(const MlpShape& s)
      : gen(s.weight_seed), fc1(s.in, s.hidden, true, gen), bn(s.hidden), drop(s.dropout, s.dropout_seed),
        fc2(s.hidden, s.out, true, gen) {
    register_module("flatten", flatten);
    register_module("fc1", fc1);
    register_module("relu", relu);
    register_module("bn", bn);
    register_module("drop", drop);
    register_module("fc2", fc2);
  }
  Tensor<float, Cpu> forward(const Tensor<float, Cpu>& x) override { return fc2(drop(bn(relu(fc1(flatten(x)))))); }
  Generator gen;
  nn::Flatten<float, Cpu> flatten;
  nn::Linear<float, Cpu> fc1;
  nn::ReLU<float, Cpu> relu;
  nn::BatchNorm1d<float, Cpu> bn;
  nn::Dropout<float, Cpu> drop;
  nn::Linear<float, Cpu> fc2;
};

// n noisy 1x4x4 images of 3 classes (class c lights row c), for the checkpoint tests' learners.
inline data::Dataset three_rows(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> px;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < 16; ++k)
      px.push_back((k / 4 == i % 3 ? 1.0f : 0.0f) + 0.3f * static_cast<float>(gen.normal()));
    labels.push_back(i % 3);
  }
  return data::Dataset::from_vectors(px, Shape{1, 4, 4}, labels, 3);
}

}  // namespace dml::testing
