// dml/backend/kernels/elementwise.hpp: fill, map, its gradient, zip and zip3
// as 1-D index functors around the scalar functors of backend/functors.hpp.
// out may alias an input (each element reads only its own index).
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

template <class T>
struct Fill {
  T* out;
  T value;
  DML_HD void operator()(std::int64_t i) const { out[i] = value; }
};

// out[i] = f(a[i])
template <class F, class T>
struct Map {
  F f;
  const T* a;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i]); }
};

// dx[i] = f.grad(x[i], y[i], g[i])
template <class F, class T>
struct MapBackward {
  F f;
  const T* x;
  const T* y;
  const T* g;
  T* dx;
  DML_HD void operator()(std::int64_t i) const { dx[i] = f.grad(x[i], y[i], g[i]); }
};

// out[i] = f(a[i], b[i])
template <class F, class T>
struct Zip {
  F f;
  const T* a;
  const T* b;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i], b[i]); }
};

// out[i] = f(a[i], b[i], c[i])
template <class F, class T>
struct Zip3 {
  F f;
  const T* a;
  const T* b;
  const T* c;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i], b[i], c[i]); }
};

}  // namespace dml::kernels
