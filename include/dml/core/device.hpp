// dml/core/device.hpp: compile-time device tags and the backend declaration.
#pragma once

#include <concepts>
#include <cstdint>

namespace dml {

// Device tags. A tensor's device is part of its type, so mixing devices is a
// compile error and CPU builds never instantiate CUDA code.
struct Cpu {
  static constexpr const char* kName = "cpu";
};
struct Cuda {
  static constexpr const char* kName = "cuda";
};

template <class D>
concept Device = std::same_as<D, Cpu> || std::same_as<D, Cuda>;

// Backend<D> is a struct of static kernels over raw pointers, specialised in
// backend/cpu/ and backend/cuda/ with the same names on both. core/ names only
// two of them, through dependent calls, and includes no backend header:
// fill(out, n, value) and add(a, b, out, n) (out = a + b, the gradient sum).
template <class D>
struct Backend;

// Element types a tensor may hold. Differentiable ops need a floating type.
template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> ||
                  std::same_as<T, std::int64_t> || std::same_as<T, std::int32_t> ||
                  std::same_as<T, std::uint8_t>;

template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double>;

}  // namespace dml
