// dml/nn/sequential.hpp: a chain of owned layers named "0", "1", ...
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "module.hpp"

namespace dml::nn {

template <class T = float, class D = Cpu>
class Sequential : public Module<T, D> {
 public:
  Sequential() = default;

  // Constructs a layer in place as the next child; returns it.
  template <class M, class... Args>
  M& emplace(Args&&... args) {
    return push_back(std::make_unique<M>(std::forward<Args>(args)...));
  }
  // Takes ownership of a layer as the next child; returns it.
  template <class M>
  M& push_back(std::unique_ptr<M> layer) {
    M& ref = this->register_module(std::to_string(layers_.size()), std::move(layer));
    layers_.push_back(&ref);
    return ref;
  }

  // Each layer's forward in turn. An empty Sequential returns x.
  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> y = x;
    for (Module<T, D>* m : layers_) y = m->forward(y);
    return y;
  }
  std::string type_name() const override { return "Sequential"; }

  std::size_t size() const noexcept { return layers_.size(); }
  // The i-th layer; throws when out of range.
  Module<T, D>& operator[](std::size_t i) const {
    DML_CHECK(i < layers_.size(), "Sequential: index ", i, " out of range for ", layers_.size(), " layers");
    return *layers_[i];
  }
  // The i-th layer as M; throws when out of range or of another type.
  template <class M>
  M& at(std::size_t i) const {
    M* m = dynamic_cast<M*>(&(*this)[i]);
    DML_CHECK(m != nullptr, "Sequential: layer ", i, " is a ", (*this)[i].type_name(), ", not the requested type");
    return *m;
  }

 private:
  std::vector<Module<T, D>*> layers_;
};

}  // namespace dml::nn
