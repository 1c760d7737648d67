// dml/optim/adam.hpp: Adam (L2 weight decay added to the gradient) and AdamW
// (decoupled weight decay), exactly as torch.optim.Adam / AdamW with
// amsgrad=False (amsgrad is not implemented).
#pragma once

#include <array>
#include <cmath>

#include "../backend/kernels/optim.hpp"
#include "../config.hpp"
#include "../core/tensor.hpp"
#include "optimizer.hpp"

namespace dml::optim {
namespace detail {

template <class O>
void validate_adam(const O& o) {
  check_rate(o.lr, "lr", O::kName);
  check_unit(o.beta1, "beta1", O::kName);
  check_unit(o.beta2, "beta2", O::kName);
  check_rate(o.eps, "eps", O::kName);
  check_rate(o.weight_decay, "weight_decay", O::kName);
}

// One fused pass over p, g and both moments (zeros, allocated at p's first
// update). t counts p's updates; the bias corrections use it.
template <class O, class T, class D>
void adam_update(const O& o, bool decoupled, Tensor<T, D>& p, const Tensor<T, D>& g, ParamState<T, D>& s) {
  Tensor<T, D>& m = s.buffers[0];
  Tensor<T, D>& v = s.buffers[1];
  if (!m.defined() || !v.defined()) {
    m = Tensor<T, D>::zeros(p.shape());
    v = Tensor<T, D>::zeros(p.shape());
    s.step = 0;
  }
  s.step += 1;
  const double t = static_cast<double>(s.step);
  const double bc1 = 1 - std::pow(o.beta1, t);
  const double bc2 = 1 - std::pow(o.beta2, t);
  kernels::AdamUpdate<T> op{p.data(),
                       g.data(),
                       m.data(),
                       v.data(),
                       T(decoupled ? 1 - o.lr * o.weight_decay : 1.0),
                       T(decoupled ? 0.0 : o.weight_decay),
                       T(o.beta1),
                       T(1 - o.beta1),
                       T(o.beta2),
                       T(1 - o.beta2),
                       T(o.lr / bc1),
                       T(std::sqrt(bc2)),
                       T(o.eps)};
  Backend<D>::optim_update(op, p.numel());
}

}  // namespace detail

// Adam options. Per update t of a parameter p with gradient g (kernels::AdamUpdate):
//   g' = g + weight_decay * p
//   m = beta1 * m + (1 - beta1) * g';  v = beta2 * v + (1 - beta2) * g'^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
struct Adam {
  double lr = 1e-3;
  double beta1 = 0.9;       // [0, 1); one-cycle momentum cycling drives it
  double beta2 = 0.999;     // [0, 1)
  double eps = 1e-8;        // added outside the square root
  double weight_decay = 0;  // L2 penalty added to the gradient

  static constexpr const char* kName = "Adam";
  static constexpr std::array<const char*, 2> kStateNames{"exp_avg", "exp_avg_sq"};
  static constexpr bool kPerParamStep = true;

  // Throws dml::Error for lr, eps or weight_decay < 0 or betas outside [0, 1).
  void validate() const { detail::validate_adam(*this); }
  bool has_momentum() const { return true; }
  double cycled_momentum() const { return beta1; }
  void set_cycled_momentum(double m) { beta1 = m; }

  template <class T, class D>
  void update(Tensor<T, D>& p, const Tensor<T, D>& g, ParamState<T, D>& s) const {
    detail::adam_update(*this, false, p, g, s);
  }
};

// AdamW options: Adam whose weight decay shrinks the parameter directly,
// p *= 1 - lr * weight_decay, before the moments are updated (the gradient
// is not changed). Same fields as Adam; weight_decay defaults to 1e-2.
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled

  static constexpr const char* kName = "AdamW";
  static constexpr std::array<const char*, 2> kStateNames{"exp_avg", "exp_avg_sq"};
  static constexpr bool kPerParamStep = true;

  void validate() const { detail::validate_adam(*this); }
  bool has_momentum() const { return true; }
  double cycled_momentum() const { return beta1; }
  void set_cycled_momentum(double m) { beta1 = m; }

  template <class T, class D>
  void update(Tensor<T, D>& p, const Tensor<T, D>& g, ParamState<T, D>& s) const {
    detail::adam_update(*this, true, p, g, s);
  }
};

}  // namespace dml::optim
