// tests/train/mlp_body.hpp: the small body the Learner and checkpoint tests train.
// It holds every kind of state a checkpoint must carry: weights, BatchNorm running
// statistics and a dropout generator.
#pragma once

#include <cstdint>

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

}  // namespace dml::testing
