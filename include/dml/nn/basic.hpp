// dml/nn/basic.hpp: parameterless layers: ReLU, Flatten, Identity.
#pragma once

#include "../ops/elementwise.hpp"
#include "module.hpp"

namespace dml::nn {

template <class T = float, class D = Cpu>
class ReLU : public Module<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

// [N, d1, d2, ...] -> [N, d1 * d2 * ...] (a view). Throws for a 0-D input.
template <class T = float, class D = Cpu>
class Flatten : public Module<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    DML_CHECK(x.defined() && x.rank() >= 1, "Flatten: expected an input of rank >= 1, got ",
              x.defined() ? x.shape().str() : std::string("undefined"));
    std::int64_t rest = 1;
    for (int d = 1; d < x.rank(); ++d) rest *= x.dim(d);
    return x.reshape(Shape{x.dim(0), rest});
  }
  std::string type_name() const override { return "Flatten"; }
};

template <class T = float, class D = Cpu>
class Identity : public Module<T, D> {
 public:
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

}  // namespace dml::nn
