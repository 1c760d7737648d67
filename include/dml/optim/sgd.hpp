// dml/optim/sgd.hpp: stochastic gradient descent with momentum, dampening,
// Nesterov momentum and L2 weight decay, exactly as torch.optim.SGD.
#pragma once

#include <array>

#include "../backend/kernels/optim.hpp"
#include "../config.hpp"
#include "../core/tensor.hpp"
#include "optimizer.hpp"

namespace dml::optim {

// SGD options; bind with optim::make(SGD{...}, module_or_groups). Per step,
// for a parameter p with gradient g (kernels::SgdUpdate):
//   d = g + weight_decay * p
//   buf = momentum * buf + (1 - dampening) * d     (first update: buf = d)
//   d = nesterov ? d + momentum * buf : buf        (when momentum > 0)
//   p -= lr * d
struct SGD {
  double lr = 0.01;
  double momentum = 0;      // [0, 1)
  double dampening = 0;     // [0, 1]; must be 0 with Nesterov
  double weight_decay = 0;  // L2 penalty added to the gradient
  bool nesterov = false;    // needs momentum > 0

  static constexpr const char* kName = "SGD";
  static constexpr std::array<const char*, 1> kStateNames{"momentum_buffer"};
  static constexpr bool kPerParamStep = false;

  // Throws dml::Error for a bad value (see the field comments).
  void validate() const {
    detail::check_rate(lr, "lr", kName);
    detail::check_unit(momentum, "momentum", kName);
    DML_CHECK(dampening >= 0 && dampening <= 1, "SGD: dampening must lie in [0, 1], got ", dampening);
    detail::check_rate(weight_decay, "weight_decay", kName);
    DML_CHECK(!nesterov || (momentum > 0 && dampening == 0),
              "SGD: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ", momentum,
              " and dampening ", dampening);
  }
  bool has_momentum() const { return momentum > 0; }
  double cycled_momentum() const { return momentum; }
  void set_cycled_momentum(double m) { momentum = m; }

  // One fused pass over p, g and the momentum buffer (allocated at the first
  // update of p that has momentum > 0).
  template <class T, class D>
  void update(Tensor<T, D>& p, const Tensor<T, D>& g, ParamState<T, D>& s) const {
    Tensor<T, D>& buf = s.buffers[0];
    bool first = false;
    if (momentum > 0 && !buf.defined()) {
      buf = Tensor<T, D>::empty(p.shape());
      first = true;
    }
    kernels::SgdUpdate<T> op{p.data(),     g.data(),        momentum > 0 ? buf.data() : nullptr,
                        T(lr),        T(weight_decay), T(momentum),
                        T(1 - dampening), nesterov,    first};
    Backend<D>::optim_update(op, p.numel());
  }
};

}  // namespace dml::optim
