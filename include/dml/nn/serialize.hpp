// dml/nn/serialize.hpp: module weights to and from safetensors files (and
// io::TensorMap), with PyTorch's names, so torchvision checkpoints load.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include "../io/raw_tensor.hpp"
#include "../io/safetensors.hpp"
#include "module.hpp"

namespace dml::nn {

// How a checkpoint conv with C input channels fits a module conv with one.
// Sum (timm's adapt_input_conv) makes a grey image x respond exactly as the
// RGB image (x, x, x) did; Mean (the default, as the issue asked) is that
// response divided by C, the average filter. Error refuses (shape mismatch).
enum class ChannelAdapt { Mean, Sum, Error };

// Element-type conversions that loading performs only when asked for by name.
// Without them an integer tensor never fills a floating parameter, nor a
// floating tensor an integer buffer; F32 and F64 always fill a float or double
// parameter, and any integer tensor an int64 buffer.
struct Conversions {
  bool half_to_float = false;  // F16 and BF16 tensors into floating parameters (published weights)
  bool int_to_float = false;   // integer tensors (I8..I64, U8..U64) into floating parameters
  bool float_to_int = false;   // F16..F64 tensors into int64 buffers; each value must be integral
};

struct LoadOptions {
  bool strict = true;  // missing and unexpected names are an error
  // Applied to `input_conv` when the checkpoint has C != 1 input channels and
  // the module has 1 (e.g. torchvision's RGB conv1 into a greyscale body).
  ChannelAdapt adapt_input = ChannelAdapt::Mean;
  std::string input_conv = "conv1.weight";
  // Checkpoint names starting with one of these are ignored, and the module's
  // names starting with them are not required (e.g. {"fc."} to keep a new
  // classifier when loading ImageNet weights).
  std::vector<std::string> skip_prefixes = {};
  Conversions convert = {};
};

namespace detail {

inline bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

inline bool is_float_dtype(io::DType t) {
  return t == io::DType::F16 || t == io::DType::BF16 || t == io::DType::F32 || t == io::DType::F64;
}
inline bool is_int_dtype(io::DType t) {
  switch (t) {
    case io::DType::I8: case io::DType::I16: case io::DType::I32: case io::DType::I64:
    case io::DType::U8: case io::DType::U16: case io::DType::U32: case io::DType::U64:
      return true;
    default:
      return false;
  }
}

// "[2, 3]", as Shape::str() prints, for any rank.
inline std::string dims_str(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// IEEE binary16 and bfloat16 bit patterns as float (exact).
struct HalfBits {
  std::uint16_t bits;
};
struct BF16Bits {
  std::uint16_t bits;
};
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  std::uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits = 0;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man != 0) {  // subnormal: normalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while (!(man & 0x400u));
    bits = sign | (static_cast<std::uint32_t>(112 - e) << 23) | ((man & 0x3ffu) << 13);
  } else {
    bits = sign;
  }
  return std::bit_cast<float>(bits);
}
inline float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t{h} << 16); }

// Elements of a float or integer raw tensor converted to U. The caller has
// checked that the conversion is allowed; throws naming the tensor for
// other dtypes (BOOL, F8) and, for an integer U, for a value that is not an
// integer in range.
template <class U>
std::vector<U> convert_raw(const std::string& name, const io::RawTensor& r) {
  r.validate();
  const std::size_t n = static_cast<std::size_t>(r.numel());
  std::vector<U> out(n);
  auto put = [&](std::size_t i, auto v) {
    using S = decltype(v);
    if constexpr (std::is_integral_v<U> && std::is_floating_point_v<S>) {
      DML_CHECK(std::isfinite(v) && v == std::trunc(v) && v >= -9.2233720368547758e18 && v < 9.2233720368547758e18,
                "'", name, "': expected integral values, found ", v, " at index ", i);
    } else if constexpr (std::is_integral_v<U> && std::is_same_v<S, std::uint64_t>) {
      DML_CHECK(v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), "'", name,
                "': value ", v, " at index ", i, " does not fit int64");
    }
    out[i] = static_cast<U>(v);
  };
  auto cast_from = [&](auto tag) {
    using S = decltype(tag);
    for (std::size_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, r.bytes.data() + i * sizeof(S), sizeof(S));
      if constexpr (std::is_same_v<S, HalfBits>) put(i, half_to_float(v.bits));
      else if constexpr (std::is_same_v<S, BF16Bits>) put(i, bf16_to_float(v.bits));
      else put(i, v);
    }
  };
  switch (r.dtype) {
    case io::DType::F16: cast_from(HalfBits{}); break;
    case io::DType::BF16: cast_from(BF16Bits{}); break;
    case io::DType::F32: cast_from(float{}); break;
    case io::DType::F64: cast_from(double{}); break;
    case io::DType::I8: cast_from(std::int8_t{}); break;
    case io::DType::I16: cast_from(std::int16_t{}); break;
    case io::DType::I32: cast_from(std::int32_t{}); break;
    case io::DType::I64: cast_from(std::int64_t{}); break;
    case io::DType::U8: cast_from(std::uint8_t{}); break;
    case io::DType::U16: cast_from(std::uint16_t{}); break;
    case io::DType::U32: cast_from(std::uint32_t{}); break;
    case io::DType::U64: cast_from(std::uint64_t{}); break;
    default:
      throw Error(::dml::detail::concat("'", name, "': dtype ", io::dtype_name(r.dtype),
                                        " cannot fill a parameter or buffer"));
  }
  return out;
}

// Why `r` may not fill an entry of the module that is floating (`to_float`) or
// an int64 buffer; empty when it may. Names the option that would allow it.
inline std::string refuse_dtype(const io::RawTensor& r, bool to_float, const Conversions& c) {
  const io::DType t = r.dtype;
  if (to_float) {
    if (t == io::DType::F32 || t == io::DType::F64) return {};
    if (t == io::DType::F16 || t == io::DType::BF16)
      return c.half_to_float ? std::string{} : "half precision converts only with LoadOptions::convert.half_to_float";
    if (is_int_dtype(t))
      return c.int_to_float ? std::string{}
                            : "an integer tensor fills a floating parameter only with LoadOptions::convert.int_to_float";
    return "no conversion exists";
  }
  if (is_int_dtype(t)) return {};
  if (is_float_dtype(t))
    return c.float_to_int ? std::string{}
                          : "a floating tensor fills an integer buffer only with LoadOptions::convert.float_to_int";
  return "no conversion exists";
}

// Folds a [O, C, k, k] conv weight to [O, 1, k, k] by mean or sum over C.
inline io::RawTensor adapt_input_channels(const std::string& name, const io::RawTensor& r, ChannelAdapt how) {
  std::vector<double> v = convert_raw<double>(name, r);
  const std::int64_t o = r.shape[0], c = r.shape[1], k = r.shape[2] * r.shape[3];
  std::vector<double> out(static_cast<std::size_t>(o * k), 0.0);
  for (std::int64_t i = 0; i < o; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      for (std::int64_t t = 0; t < k; ++t) out[i * k + t] += v[(i * c + j) * k + t];
  if (how == ChannelAdapt::Mean)
    for (double& x : out) x /= static_cast<double>(c);
  return io::RawTensor::from(out, {o, 1, r.shape[2], r.shape[3]});
}

}  // namespace detail

// A state dict as host tensors, each name with `prefix` prepended: floating
// entries as F32 (float) or F64 (double), counters as I64. Values are copied
// bit for bit. Throws dml::Error when a prefixed name is already in `out`.
template <class T, class D>
void append_tensor_map(const StateDict<T, D>& sd, const std::string& prefix, io::TensorMap& out) {
  for (const auto& item : sd) {
    const std::string name = prefix + item.first;
    std::visit(
        [&](const auto& t) {
          std::vector<std::int64_t> shape(t.shape().begin(), t.shape().end());
          const bool fresh = out.emplace(name, io::RawTensor::from(t.to_vector(), std::move(shape))).second;
          DML_CHECK(fresh, "to_tensor_map: two tensors are named '", name, "'");
        },
        item.second);
  }
}
template <class T, class D>
io::TensorMap to_tensor_map(const StateDict<T, D>& sd) {
  io::TensorMap out;
  append_tensor_map(sd, "", out);
  return out;
}

// The entries of `map` whose names start with `prefix`, prefix removed, as a
// state dict: I64 and I32 entries as int64 counters, F32 and F64 entries
// converted to T (exact when the file holds T). Throws dml::Error naming the
// tensor for any other dtype.
template <class T, class D>
StateDict<T, D> state_dict_from(const io::TensorMap& map, const std::string& prefix = "") {
  StateDict<T, D> sd;
  for (const auto& [name, raw] : map) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    Shape shape(std::span<const std::int64_t>(raw.shape.data(), raw.shape.size()));
    const std::string key = name.substr(prefix.size());
    if (raw.dtype == io::DType::I64 || raw.dtype == io::DType::I32)
      sd.insert(key, Tensor<std::int64_t, D>::from_vector(detail::convert_raw<std::int64_t>(name, raw), shape));
    else if (raw.dtype == io::DType::F32 || raw.dtype == io::DType::F64)
      sd.insert(key, Tensor<T, D>::from_vector(detail::convert_raw<T>(name, raw), shape));
    else
      throw Error(::dml::detail::concat("'", name, "': expected F32, F64, I64 or I32, found ",
                                        io::dtype_name(raw.dtype)));
  }
  return sd;
}

// The module's state dict as host tensors (see above).
template <class T, class D>
io::TensorMap to_tensor_map(const Module<T, D>& m) {
  return to_tensor_map(m.state_dict());
}

// Loads named tensors into the module: F32 and F64 into floating parameters
// (converted to T), integer tensors into int64 buffers; other pairings only
// through opt.convert (see Conversions). Throws dml::Error, changing nothing,
// with one message "load_weights into <Module>: ..." that lists every problem:
// each wrong dtype or shape as "'key': expected <dtype> <shape>, found
// <dtype> <shape>", then (strict) missing and unexpected keys. Returns what a
// non-strict load skipped.
template <class T, class D>
LoadResult load_tensor_map(Module<T, D>& m, const io::TensorMap& map, const LoadOptions& opt = {}) {
  const StateDict<T, D> own = m.state_dict();
  const std::string float_name(io::dtype_name(io::dtype_of<T>));
  StateDict<T, D> sd;
  LoadResult res;
  std::vector<std::string> wrong;
  for (const auto& [name, raw0] : map) {
    if (detail::has_prefix(name, opt.skip_prefixes)) continue;
    const StateTensor<T, D>* dst = own.find(name);
    if (!dst) {
      res.unexpected.push_back(name);
      continue;
    }
    const bool to_float = std::holds_alternative<Tensor<T, D>>(*dst);
    const Shape& want = std::visit([](const auto& t) -> const Shape& { return t.shape(); }, *dst);
    const std::string found = ::dml::detail::concat(io::dtype_name(raw0.dtype), " ", detail::dims_str(raw0.shape));
    const std::string expected = ::dml::detail::concat(to_float ? float_name : std::string("I64"), " ", want.str());
    if (std::string why = detail::refuse_dtype(raw0, to_float, opt.convert); !why.empty()) {
      wrong.push_back(::dml::detail::concat("'", name, "': expected ", expected, ", found ", found, " (", why, ")"));
      continue;
    }
    const io::RawTensor* raw = &raw0;
    io::RawTensor adapted;
    if (name == opt.input_conv && raw->shape.size() == 4 && want.rank() == 4 && want[1] == 1 && raw->shape[1] > 1 &&
        raw->shape[0] == want[0] && opt.adapt_input != ChannelAdapt::Error) {
      adapted = detail::adapt_input_channels(name, *raw, opt.adapt_input);
      raw = &adapted;
    }
    if (!std::equal(raw->shape.begin(), raw->shape.end(), want.begin(), want.end())) {
      wrong.push_back(::dml::detail::concat("'", name, "': expected ", expected, ", found ", found));
      continue;
    }
    const Shape& shape = want;
    try {
      if (to_float) sd.insert(name, Tensor<T, D>::from_vector(detail::convert_raw<T>(name, *raw), shape));
      else sd.insert(name, Tensor<std::int64_t, D>::from_vector(detail::convert_raw<std::int64_t>(name, *raw), shape));
    } catch (const Error& e) {
      wrong.push_back(e.message());
    }
  }
  for (const auto& [name, entry] : own)
    if (!map.contains(name) && !detail::has_prefix(name, opt.skip_prefixes)) res.missing.push_back(name);
  std::string msg;
  for (const std::string& w : wrong) msg += "; " + w;
  if (opt.strict && !res.missing.empty()) msg += "; missing keys: " + detail::join(res.missing);
  if (opt.strict && !res.unexpected.empty()) msg += "; unexpected keys: " + detail::join(res.unexpected);
  if (!msg.empty()) throw Error(::dml::detail::concat("load_weights into ", m.type_name(), ":", msg.substr(1)));
  m.load_state_dict(sd, false);  // checked above: changes nothing but the values
  return res;
}

// Writes the module's state dict to a safetensors file (atomically).
// Throws dml::Error on I/O failure.
template <class T, class D>
void save_weights(const Module<T, D>& m, const std::filesystem::path& path, const io::StringMap& metadata = {}) {
  io::save_safetensors(path, to_tensor_map(m), metadata);
}

// Reads a safetensors file (e.g. a torchvision state dict saved with
// safetensors.torch.save_file) into the module; see load_tensor_map.
template <class T, class D>
LoadResult load_weights(Module<T, D>& m, const std::filesystem::path& path, const LoadOptions& opt = {}) {
  io::TensorMap map = io::load_safetensors(path);  // its errors name the file
  try {
    return load_tensor_map(m, map, opt);
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(path.string(), ": ", e.message()));
  }
}

}  // namespace dml::nn
