// dml/backend/kernels/optim.hpp: the fused optimiser updates, written once
// for both backends.
//
// Each op is a trivially copyable struct of raw pointers and scalars with a
// DML_HD `operator()(i)` that updates element i of a parameter and its state
// in one pass (read p, g, state; write p, state). Backend<D>::optim_update
// runs it for every i: a parallel loop on the host, the grid-stride for_each
// kernel on the device. Every scalar (including 1 - beta and 1 - dampening) is
// computed in double on the host and rounded to T once, as PyTorch rounds the
// Python floats it passes to its kernels; float results then match PyTorch's.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../math.hpp"

namespace dml::kernels {

// PyTorch's SGD (torch.optim.SGD, 1.13) on one element:
//   d = g + weight_decay * p
//   with momentum: buf = first ? d : momentum * buf + (1 - dampening) * d
//                  d   = nesterov ? d + momentum * buf : buf
//   p = p - lr * d
// `buf` is null when momentum is 0 (no state).
template <class T>
struct SgdUpdate {
  T* p;
  const T* g;
  T* buf;
  T lr, weight_decay, momentum, one_minus_dampening;
  bool nesterov, first;

  DML_HD void operator()(std::int64_t i) const {
    T pi = p[i];
    T d = g[i];
    if (weight_decay != T(0)) d = d + weight_decay * pi;
    if (buf) {
      T b = first ? d : momentum * buf[i] + one_minus_dampening * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[i] = pi - lr * d;
  }
};

// PyTorch's Adam / AdamW (1.13, single-tensor path, amsgrad off) on one element:
//   p  = p * decay                         (AdamW: decay = 1 - lr * wd; Adam: 1)
//   g' = g + l2 * p                        (Adam: l2 = wd; AdamW: 0)
//   m  = beta1 * m + (1 - beta1) * g'
//   v  = beta2 * v + (1 - beta2) * g' * g'
//   p  = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// (products and quotients grouped left to right, as PyTorch's addcmul and
// addcdiv kernels evaluate them)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t).
template <class T>
struct AdamUpdate {
  T* p;
  const T* g;
  T* m;
  T* v;
  T decay, l2, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps;

  DML_HD void operator()(std::int64_t i) const {
    T pi = p[i];
    if (decay != T(1)) pi = pi * decay;
    T gi = g[i];
    if (l2 != T(0)) gi = gi + l2 * pi;
    T mi = beta1 * m[i] + one_minus_beta1 * gi;
    T vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T denom = math::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * mi / denom;
  }
};

}  // namespace dml::kernels
