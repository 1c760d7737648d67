// dml/backend/functors.hpp: elementwise math written once for both backends.
//
// A unary functor has `T operator()(T x)` and `T grad(T x, T y, T g)`, the
// chain-rule product g * dy/dx given input x and output y. A binary functor has
// `T operator()(T a, T b)`. All are trivially copyable and DML_HD, so the CPU
// loop and the CUDA grid-stride kernel run the same lines.
#pragma once

#include "../config.hpp"
#include "math.hpp"

namespace dml::fn {

struct Neg {
  template <class T> DML_HD T operator()(T x) const { return -x; }
  template <class T> DML_HD T grad(T, T, T g) const { return -g; }
};
struct Exp {
  template <class T> DML_HD T operator()(T x) const { return math::exp(x); }
  template <class T> DML_HD T grad(T, T y, T g) const { return g * y; }
};
struct Log {
  template <class T> DML_HD T operator()(T x) const { return math::log(x); }
  template <class T> DML_HD T grad(T x, T, T g) const { return g / x; }
};
struct Sqrt {
  template <class T> DML_HD T operator()(T x) const { return math::sqrt(x); }
  template <class T> DML_HD T grad(T, T y, T g) const { return g / (T(2) * y); }
};
// sqrt(max(x, 0)) with gradient 0 where the result is 0: a distance of 0 has
// no direction (the diagonal of a pairwise distance matrix).
struct SafeSqrt {
  template <class T> DML_HD T operator()(T x) const { return x > T(0) ? math::sqrt(x) : T(0); }
  template <class T> DML_HD T grad(T, T y, T g) const { return y > T(0) ? g / (T(2) * y) : T(0); }
};
struct Square {
  template <class T> DML_HD T operator()(T x) const { return x * x; }
  template <class T> DML_HD T grad(T x, T, T g) const { return T(2) * x * g; }
};
// x^p for a scalar exponent p.
struct Pow {
  double p;
  template <class T> DML_HD T operator()(T x) const { return math::pow(x, T(p)); }
  template <class T> DML_HD T grad(T x, T, T g) const { return g * T(p) * math::pow(x, T(p - 1)); }
};
// Clamp into [lo, hi]; the gradient passes only strictly inside.
struct Clamp {
  double lo, hi;
  template <class T> DML_HD T operator()(T x) const { return math::clamp(x, T(lo), T(hi)); }
  template <class T> DML_HD T grad(T x, T, T g) const { return (x > T(lo) && x < T(hi)) ? g : T(0); }
};
struct Relu {
  template <class T> DML_HD T operator()(T x) const { return x < T(0) ? T(0) : x; }  // NaN propagates, as in PyTorch
  template <class T> DML_HD T grad(T x, T, T g) const { return x > T(0) ? g : T(0); }
};
struct Sigmoid {
  template <class T> DML_HD T operator()(T x) const {
    // Stable for large |x|: never exponentiates a large positive number.
    if (x >= T(0)) return T(1) / (T(1) + math::exp(-x));
    T e = math::exp(x);
    return e / (T(1) + e);
  }
  template <class T> DML_HD T grad(T, T y, T g) const { return g * y * (T(1) - y); }
};
struct Tanh {
  template <class T> DML_HD T operator()(T x) const { return math::tanh(x); }
  template <class T> DML_HD T grad(T, T y, T g) const { return g * (T(1) - y * y); }
};
// a * x + b, the affine map used for scalar arithmetic.
struct Affine {
  double a, b;
  template <class T> DML_HD T operator()(T x) const { return T(a) * x + T(b); }
  template <class T> DML_HD T grad(T, T, T g) const { return T(a) * g; }
};

struct Add {
  template <class T> DML_HD T operator()(T a, T b) const { return a + b; }
};
struct Sub {
  template <class T> DML_HD T operator()(T a, T b) const { return a - b; }
};
struct Mul {
  template <class T> DML_HD T operator()(T a, T b) const { return a * b; }
};
struct Div {
  template <class T> DML_HD T operator()(T a, T b) const { return a / b; }
};
// d(a/b)/db * g = -g * a / b^2, evaluated as (g, a, b) -> value by zip3.
struct DivGradB {
  template <class T> DML_HD T operator()(T g, T a, T b) const { return -g * a / (b * b); }
};

}  // namespace dml::fn
