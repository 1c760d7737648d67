// dml/ops/elementwise.hpp: differentiable elementwise maths with broadcasting.
#pragma once

#include "../backend/functors.hpp"
#include "common.hpp"

namespace dml {
namespace detail {

// y = f(x) for a unary functor of backend/functors.hpp.
template <class F, class T, class D>
Tensor<T, D> unary(F f, const Tensor<T, D>& x, const char* name) {
  static_assert(Real<T>, "differentiable ops need float or double tensors");
  DML_CHECK(x.defined(), name, ": input is an undefined tensor");
  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Backend<D>::map(f, x.data(), out.data(), x.numel());
  if (tracking(x))
    record(out, name, {&x}, [f, xs = x.detach(), ys = out.detach()](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(xs.shape());
      Backend<D>::map_backward(f, xs.data(), ys.data(), g.data(), dx.data(), xs.numel());
      return Grads<T, D>{dx};
    });
  return out;
}

// out = f(a, b) with NumPy broadcasting; no graph.
template <class F, class T, class D>
Tensor<T, D> binary_raw(F f, const Tensor<T, D>& a, const Tensor<T, D>& b, const char* name) {
  static_assert(Real<T>, "differentiable ops need float or double tensors");
  DML_CHECK(a.defined() && b.defined(), name, ": an operand is an undefined tensor");
  if (a.shape() == b.shape()) {
    Tensor<T, D> out = Tensor<T, D>::empty(a.shape());
    Backend<D>::zip(f, a.data(), b.data(), out.data(), a.numel());
    return out;
  }
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor<T, D> out = Tensor<T, D>::empty(s);
  Backend<D>::broadcast_zip(f, make_broadcast_plan(s, a.shape(), b.shape()), a.data(), b.data(), out.data());
  return out;
}

}  // namespace detail

namespace ops {

template <class T, class D> Tensor<T, D> neg(const Tensor<T, D>& x) { return detail::unary(fn::Neg{}, x, "neg"); }
template <class T, class D> Tensor<T, D> exp(const Tensor<T, D>& x) { return detail::unary(fn::Exp{}, x, "exp"); }
// Natural log; the caller keeps x positive.
template <class T, class D> Tensor<T, D> log(const Tensor<T, D>& x) { return detail::unary(fn::Log{}, x, "log"); }
template <class T, class D> Tensor<T, D> sqrt(const Tensor<T, D>& x) { return detail::unary(fn::Sqrt{}, x, "sqrt"); }
// sqrt(max(x, 0)), with gradient 0 where that is 0 (pairwise distances).
template <class T, class D>
Tensor<T, D> safe_sqrt(const Tensor<T, D>& x) {
  return detail::unary(fn::SafeSqrt{}, x, "safe_sqrt");
}
template <class T, class D> Tensor<T, D> square(const Tensor<T, D>& x) { return detail::unary(fn::Square{}, x, "square"); }
template <class T, class D> Tensor<T, D> relu(const Tensor<T, D>& x) { return detail::unary(fn::Relu{}, x, "relu"); }
template <class T, class D> Tensor<T, D> sigmoid(const Tensor<T, D>& x) { return detail::unary(fn::Sigmoid{}, x, "sigmoid"); }
template <class T, class D> Tensor<T, D> tanh(const Tensor<T, D>& x) { return detail::unary(fn::Tanh{}, x, "tanh"); }
// x^p elementwise for a scalar exponent.
template <class T, class D> Tensor<T, D> pow(const Tensor<T, D>& x, double p) { return detail::unary(fn::Pow{p}, x, "pow"); }
// Clamps into [lo, hi]; throws when lo > hi. The gradient is zero where clamped.
template <class T, class D>
Tensor<T, D> clamp(const Tensor<T, D>& x, double lo, double hi) {
  DML_CHECK(lo <= hi, "clamp: lower bound ", lo, " exceeds upper bound ", hi);
  return detail::unary(fn::Clamp{lo, hi}, x, "clamp");
}
// a * x + b for scalars a and b.
template <class T, class D>
Tensor<T, D> affine(const Tensor<T, D>& x, double a, double b) { return detail::unary(fn::Affine{a, b}, x, "affine"); }

// a + b with broadcasting; throws naming both shapes when they do not broadcast.
template <class T, class D>
Tensor<T, D> add(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  Tensor<T, D> out = detail::binary_raw(fn::Add{}, a, b, "add");
  if (detail::tracking(a, b))
    detail::record(out, "add", {&a, &b}, [sa = a.shape(), sb = b.shape()](const Tensor<T, D>& g, Needs n) {
      return detail::Grads<T, D>{n[0] ? detail::sum_to(g, sa) : Tensor<T, D>(),
                                 n[1] ? detail::sum_to(g, sb) : Tensor<T, D>()};
    });
  return out;
}
template <class T, class D>
Tensor<T, D> sub(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  Tensor<T, D> out = detail::binary_raw(fn::Sub{}, a, b, "sub");
  if (detail::tracking(a, b))
    detail::record(out, "sub", {&a, &b}, [sa = a.shape(), sb = b.shape()](const Tensor<T, D>& g, Needs n) {
      return detail::Grads<T, D>{n[0] ? detail::sum_to(g, sa) : Tensor<T, D>(),
                                 n[1] ? detail::sum_to(neg(g), sb) : Tensor<T, D>()};
    });
  return out;
}
template <class T, class D>
Tensor<T, D> mul(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  Tensor<T, D> out = detail::binary_raw(fn::Mul{}, a, b, "mul");
  if (detail::tracking(a, b))
    detail::record(out, "mul", {&a, &b}, [as = a.detach(), bs = b.detach()](const Tensor<T, D>& g, Needs n) {
      return detail::Grads<T, D>{
          n[0] ? detail::sum_to(detail::binary_raw(fn::Mul{}, g, bs, "mul"), as.shape()) : Tensor<T, D>(),
          n[1] ? detail::sum_to(detail::binary_raw(fn::Mul{}, g, as, "mul"), bs.shape()) : Tensor<T, D>()};
    });
  return out;
}
template <class T, class D>
Tensor<T, D> div(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  Tensor<T, D> out = detail::binary_raw(fn::Div{}, a, b, "div");
  if (detail::tracking(a, b))
    detail::record(out, "div", {&a, &b}, [as = a.detach(), bs = b.detach()](const Tensor<T, D>& g, Needs n) {
      Tensor<T, D> ga, gb;
      if (n[0]) ga = detail::sum_to(detail::binary_raw(fn::Div{}, g, bs, "div"), as.shape());
      if (n[1]) {
        // -g * a / b^2 = -(g / b) * (a / b)
        Tensor<T, D> q = detail::binary_raw(fn::Div{}, g, bs, "div");
        Tensor<T, D> r = detail::binary_raw(fn::Div{}, as, bs, "div");
        gb = detail::sum_to(neg(detail::binary_raw(fn::Mul{}, q, r, "div")), bs.shape());
      }
      return detail::Grads<T, D>{ga, gb};
    });
  return out;
}

}  // namespace ops

// Arithmetic operators, found by argument-dependent lookup on Tensor.
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& x) { return ops::neg(x); }
template <class T, class D> Tensor<T, D> operator+(const Tensor<T, D>& a, const Tensor<T, D>& b) { return ops::add(a, b); }
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& a, const Tensor<T, D>& b) { return ops::sub(a, b); }
template <class T, class D> Tensor<T, D> operator*(const Tensor<T, D>& a, const Tensor<T, D>& b) { return ops::mul(a, b); }
template <class T, class D> Tensor<T, D> operator/(const Tensor<T, D>& a, const Tensor<T, D>& b) { return ops::div(a, b); }
template <class T, class D> Tensor<T, D> operator+(const Tensor<T, D>& x, std::type_identity_t<T> s) { return ops::affine(x, 1, s); }
template <class T, class D> Tensor<T, D> operator+(std::type_identity_t<T> s, const Tensor<T, D>& x) { return ops::affine(x, 1, s); }
template <class T, class D> Tensor<T, D> operator-(const Tensor<T, D>& x, std::type_identity_t<T> s) { return ops::affine(x, 1, -s); }
template <class T, class D> Tensor<T, D> operator-(std::type_identity_t<T> s, const Tensor<T, D>& x) { return ops::affine(x, -1, s); }
template <class T, class D> Tensor<T, D> operator*(const Tensor<T, D>& x, std::type_identity_t<T> s) { return ops::affine(x, s, 0); }
template <class T, class D> Tensor<T, D> operator*(std::type_identity_t<T> s, const Tensor<T, D>& x) { return ops::affine(x, s, 0); }
// Division by a scalar; throws on division by zero.
template <class T, class D>
Tensor<T, D> operator/(const Tensor<T, D>& x, std::type_identity_t<T> s) {
  DML_CHECK(s != T(0), "div: division of a tensor of shape ", x.shape().str(), " by the scalar 0");
  return ops::affine(x, 1.0 / static_cast<double>(s), 0);
}
template <class T, class D>
Tensor<T, D> operator/(std::type_identity_t<T> s, const Tensor<T, D>& x) {
  return ops::div(Tensor<T, D>::full(Shape{}, s), x);
}

}  // namespace dml
