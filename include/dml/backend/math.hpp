// dml/backend/math.hpp: scalar math that compiles for host and device.
//
// Inside DML_HD code call dml::math::exp and friends, never std::exp: the std
// overloads are host-only under nvcc. Each has a float and a double overload.
#pragma once

#include <math.h>

#include "../config.hpp"

namespace dml::math {

DML_HD float exp(float x) { return ::expf(x); }
DML_HD double exp(double x) { return ::exp(x); }
DML_HD float log(float x) { return ::logf(x); }
DML_HD double log(double x) { return ::log(x); }
DML_HD float log1p(float x) { return ::log1pf(x); }
DML_HD double log1p(double x) { return ::log1p(x); }
DML_HD float sqrt(float x) { return ::sqrtf(x); }
DML_HD double sqrt(double x) { return ::sqrt(x); }
DML_HD float pow(float x, float p) { return ::powf(x, p); }
DML_HD double pow(double x, double p) { return ::pow(x, p); }
DML_HD float tanh(float x) { return ::tanhf(x); }
DML_HD double tanh(double x) { return ::tanh(x); }
DML_HD float cos(float x) { return ::cosf(x); }
DML_HD double cos(double x) { return ::cos(x); }
DML_HD float sin(float x) { return ::sinf(x); }
DML_HD double sin(double x) { return ::sin(x); }
DML_HD float acos(float x) { return ::acosf(x); }
DML_HD double acos(double x) { return ::acos(x); }
DML_HD float floor(float x) { return ::floorf(x); }
DML_HD double floor(double x) { return ::floor(x); }
DML_HD float abs(float x) { return ::fabsf(x); }
DML_HD double abs(double x) { return ::fabs(x); }

template <class T>
DML_HD T max(T a, T b) {
  return a < b ? b : a;
}
template <class T>
DML_HD T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
DML_HD T clamp(T x, T lo, T hi) {
  return x < lo ? lo : (hi < x ? hi : x);
}
// True for NaN and +-Inf.
template <class T>
DML_HD bool is_finite(T x) {
  return x - x == x - x;
}

}  // namespace dml::math
