// dml/ops/tracking.hpp: graph recording for ops whose inputs may be absent
// (an optional bias is an undefined tensor).
#pragma once

#include <initializer_list>

#include "common.hpp"

namespace dml::detail {

// Whether grad mode is on and any defined input requires a gradient.
template <class T, class D>
bool tracking_any(std::initializer_list<const Tensor<T, D>*> inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor<T, D>* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

// "[2, 3]" for a defined tensor, "undefined" otherwise (for messages).
template <class T, class D>
std::string shape_or_undefined(const Tensor<T, D>& t) {
  return t.defined() ? t.shape().str() : std::string("undefined");
}

}  // namespace dml::detail
