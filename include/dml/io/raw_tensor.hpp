// dml/io/raw_tensor.hpp: a device-free tensor (dtype + shape + little-endian
// bytes) that the file formats read and write.
#pragma once

#include <dml/config.hpp>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

static_assert(std::endian::native == std::endian::little,
              "dml::io assumes a little-endian host: file bytes are copied as they are");

namespace dml::io {

// Element types, in the safetensors reference order (increasing alignment);
// the safetensors writer sorts by this order. F16, BF16 and the F8 types are
// raw passthrough: no C++ element type maps to them.
enum class DType : std::uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64
};

inline constexpr DType kAllDTypes[] = {
    DType::BOOL, DType::U8,  DType::I8,   DType::F8_E5M2, DType::F8_E4M3,
    DType::I16,  DType::U16, DType::F16,  DType::BF16,    DType::I32,
    DType::U32,  DType::F32, DType::F64,  DType::I64,     DType::U64};

// dtype_size returns the bytes per element.
constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::BOOL: case DType::U8: case DType::I8:
    case DType::F8_E5M2: case DType::F8_E4M3: return 1;
    case DType::I16: case DType::U16: case DType::F16: case DType::BF16: return 2;
    case DType::I32: case DType::U32: case DType::F32: return 4;
    case DType::F64: case DType::I64: case DType::U64: return 8;
  }
  return 0;
}

// dtype_name returns the safetensors spelling ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::BOOL: return "BOOL";
    case DType::U8: return "U8";
    case DType::I8: return "I8";
    case DType::F8_E5M2: return "F8_E5M2";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
  }
  return "?";
}

// dtype_from_name parses a safetensors dtype spelling; nullopt when unknown.
constexpr std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

namespace detail {
template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<std::int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<std::int16_t> { static constexpr DType value = DType::I16; };
template <> struct DTypeOf<std::int8_t> { static constexpr DType value = DType::I8; };
template <> struct DTypeOf<std::uint64_t> { static constexpr DType value = DType::U64; };
template <> struct DTypeOf<std::uint32_t> { static constexpr DType value = DType::U32; };
template <> struct DTypeOf<std::uint16_t> { static constexpr DType value = DType::U16; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::U8; };
}  // namespace detail

// Element is a C++ type with a DType: float, double, (u)int8..64. bool is not
// one (BOOL tensors are read through their bytes).
template <class T>
concept Element = requires { detail::DTypeOf<std::remove_cv_t<T>>::value; };

template <Element T>
inline constexpr DType dtype_of = detail::DTypeOf<std::remove_cv_t<T>>::value;

// shape_string formats a shape as "[2, 3]".
inline std::string shape_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// checked_numel returns the product of the dims (1 for a 0-d shape); throws
// dml::Error when a dim is negative or the product times elem_size overflows
// int64.
inline std::int64_t checked_numel(std::span<const std::int64_t> shape, std::size_t elem_size = 1) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t n = 1;
  bool zero = false;
  for (std::int64_t d : shape) {
    DML_CHECK(d >= 0, "negative dimension in shape ", shape_string(shape));
    if (d == 0) zero = true;
    else if (n > kMax / d) n = -1;  // overflow; reported below unless a dim is 0
    else if (n >= 0) n *= d;
  }
  if (zero) return 0;
  DML_CHECK(n >= 0 && n <= kMax / static_cast<std::int64_t>(elem_size ? elem_size : 1),
            "shape ", shape_string(shape), " overflows: too many elements");
  return n;
}

// RawTensor: dtype, C-order shape and the little-endian element bytes.
struct RawTensor {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;

  // numel returns the element count (1 for 0-d); throws on a bad shape.
  std::int64_t numel() const { return checked_numel(shape, dtype_size(dtype)); }

  // validate throws dml::Error unless bytes.size() == numel() * dtype_size.
  void validate() const {
    auto want = static_cast<std::uint64_t>(numel()) * dtype_size(dtype);
    DML_CHECK(bytes.size() == want, "tensor of dtype ", dtype_name(dtype), " and shape ",
              shape_string(shape), " needs ", want, " bytes but holds ", bytes.size());
  }

  // as<T> copies the elements out; throws dml::Error when T does not match
  // dtype or the byte count is wrong.
  template <Element T>
  std::vector<T> as() const {
    DML_CHECK(dtype_of<T> == dtype, "tensor has dtype ", dtype_name(dtype), ", not ",
              dtype_name(dtype_of<T>));
    validate();
    std::vector<T> out(bytes.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }

  // from copies numel(shape) elements starting at data; throws on a bad shape.
  template <Element T>
  static RawTensor from(const T* data, std::vector<std::int64_t> shape) {
    RawTensor t;
    t.dtype = dtype_of<T>;
    t.shape = std::move(shape);
    auto n = static_cast<std::size_t>(t.numel());
    t.bytes.resize(n * sizeof(T));
    if (n) std::memcpy(t.bytes.data(), data, n * sizeof(T));
    return t;
  }

  // from copies values; throws unless values.size() == numel(shape).
  template <Element T>
  static RawTensor from(const std::vector<T>& values, std::vector<std::int64_t> shape) {
    auto n = checked_numel(shape, sizeof(T));
    DML_CHECK(static_cast<std::uint64_t>(n) == values.size(), "shape ", shape_string(shape),
              " holds ", n, " elements but ", values.size(), " values were given");
    return from(values.data(), std::move(shape));
  }

  friend bool operator==(const RawTensor&, const RawTensor&) = default;
};

// TensorMap: tensors by name, ordered by name (std::map).
using TensorMap = std::map<std::string, RawTensor>;

}  // namespace dml::io
