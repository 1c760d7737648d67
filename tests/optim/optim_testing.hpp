// tests/optim/optim_testing.hpp: helpers shared by the optimiser tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <dml/backend/cpu/backend.hpp>
#include <dml/nn/module.hpp>
#include <dml/optim/adam.hpp>
#include <dml/optim/sgd.hpp>

namespace dml::testing {

// The problem tests/fixtures/gen_optim.py runs through PyTorch: p0 = [1, -2]
// and three fixed gradients.
inline const std::vector<double> kP0 = {1.0, -2.0};
inline const std::vector<std::vector<double>> kGrads = {{0.5, -0.3}, {-0.2, 0.4}, {0.1, 0.25}};

using Steps = std::vector<std::vector<double>>;

// The parameter after each step of `options` on that problem, in T.
template <class T, class O>
Steps run_three_steps(const O& options) {
  std::vector<T> p0(kP0.begin(), kP0.end());
  Tensor<T> p = Tensor<T>::from_vector(p0);
  p.requires_grad_();
  auto opt = optim::make(options, std::vector<Tensor<T>>{p});
  Steps out;
  for (const auto& g : kGrads) {
    p.set_grad(Tensor<T>::from_vector(std::vector<T>(g.begin(), g.end())));
    opt.step();
    std::vector<T> v = p.to_vector();
    out.emplace_back(v.begin(), v.end());
  }
  return out;
}

// Element-wise |a - b| <= rel * max(|a|, |b|, 1e-300) per step.
inline void check_steps(const Steps& got, const Steps& want, double rel) {
  REQUIRE(got.size() == want.size());
  for (std::size_t s = 0; s < got.size(); ++s) {
    REQUIRE(got[s].size() == want[s].size());
    for (std::size_t i = 0; i < got[s].size(); ++i) {
      INFO("step " << s + 1 << " element " << i << ": got " << got[s][i] << " want " << want[s][i]);
      CHECK(got[s][i] == doctest::Approx(want[s][i]).epsilon(rel).scale(0));
    }
  }
}

// Bitwise equality of two tensors' elements.
template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  std::vector<T> x = a.to_vector(), y = b.to_vector();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

// A module with one parameter of each kind the default grouping sorts:
// fc.weight [3, 4] and conv.weight [2, 1, 3, 3] (decayed), fc.bias [3] and
// bn.weight / bn.bias [2] (not decayed).
template <class T>
class TinyNet : public nn::Module<T> {
 public:
  struct Leaf : nn::Module<T> {
    void add(const std::string& name, const Shape& shape, T value) {
      this->register_parameter(name, Tensor<T>::full(shape, value));
    }
  };
  TinyNet() {
    conv.add("weight", Shape{2, 1, 3, 3}, T(0.5));
    bn.add("weight", Shape{2}, T(1));
    bn.add("bias", Shape{2}, T(0.25));
    fc.add("weight", Shape{3, 4}, T(-0.5));
    fc.add("bias", Shape{3}, T(0.125));
    this->register_module("conv", conv);
    this->register_module("bn", bn);
    this->register_module("fc", fc);
  }
  Leaf conv, bn, fc;
};

// Sets every parameter's gradient to a tensor filled with `value`.
template <class T>
void set_all_grads(const nn::Module<T>& m, T value) {
  for (auto& p : m.parameters()) p.set_grad(Tensor<T>::full(p.shape(), value));
}

}  // namespace dml::testing
