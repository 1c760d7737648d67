// dml/nn/dropout.hpp: the dropout layer with its own saveable generator.
#pragma once

#include "../core/random.hpp"
#include "../ops/dropout.hpp"
#include "module.hpp"

namespace dml::nn {

// Inverted dropout with probability p in training mode, identity in eval mode.
// The mask stream is the layer's own Generator (registered as "generator", so
// Module::named_generators() lists it): save rng_state() with a checkpoint and
// set_rng_state() replays the same masks.
template <class T = float, class D = Cpu>
class Dropout : public Module<T, D> {
 public:
  // Throws dml::Error when p is outside [0, 1].
  explicit Dropout(double p = 0.5, std::uint64_t seed = 0) : p_(p), gen_(seed) {
    DML_CHECK(p >= 0 && p <= 1, "Dropout: probability must lie in [0, 1], got ", p);
    this->register_generator("generator", gen_);
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::dropout(x, p_, gen_, this->is_training()); }
  std::string type_name() const override { return "Dropout"; }

  double p() const { return p_; }
  Generator& generator() { return gen_; }
  Generator::State rng_state() const { return gen_.state(); }
  void set_rng_state(Generator::State s) { gen_.set_state(s); }

 private:
  double p_;
  Generator gen_;
};

}  // namespace dml::nn
