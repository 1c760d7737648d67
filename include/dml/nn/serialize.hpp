// dml/nn/serialize.hpp: module weights to and from safetensors files (and
// io::TensorMap), with PyTorch's names, so torchvision checkpoints load.
#pragma once

#include <cstring>
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
};

namespace detail {

inline bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

// Elements of a float/int raw tensor converted to U; throws naming the tensor
// for other dtypes.
template <class U>
std::vector<U> convert_raw(const std::string& name, const io::RawTensor& r) {
  r.validate();
  const std::size_t n = static_cast<std::size_t>(r.numel());
  std::vector<U> out(n);
  auto cast_from = [&](auto tag) {
    using S = decltype(tag);
    std::vector<S> src(n);
    if (n) std::memcpy(src.data(), r.bytes.data(), n * sizeof(S));
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<U>(src[i]);
  };
  switch (r.dtype) {
    case io::DType::F32:
      cast_from(float{});
      break;
    case io::DType::F64:
      cast_from(double{});
      break;
    case io::DType::I64:
      cast_from(std::int64_t{});
      break;
    case io::DType::I32:
      cast_from(std::int32_t{});
      break;
    default:
      throw Error(::dml::detail::concat("load_weights: tensor '", name, "' has dtype ", io::dtype_name(r.dtype),
                                        "; only F32, F64, I64 and I32 are supported"));
  }
  return out;
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
    else
      sd.insert(key, Tensor<T, D>::from_vector(detail::convert_raw<T>(name, raw), shape));
  }
  return sd;
}

// The module's state dict as host tensors (see above).
template <class T, class D>
io::TensorMap to_tensor_map(const Module<T, D>& m) {
  return to_tensor_map(m.state_dict());
}

// Loads named tensors into the module. Floating entries are converted to T
// (F32 or F64 accepted), counters from I64 or I32. Throws dml::Error, changing
// nothing, for shape or dtype mismatches and (strict) missing or unexpected
// names, listing them all; returns what a non-strict load skipped.
template <class T, class D>
LoadResult load_tensor_map(Module<T, D>& m, const io::TensorMap& map, const LoadOptions& opt = {}) {
  StateDict<T, D> own = m.state_dict();
  StateDict<T, D> sd;
  for (const auto& [name, raw0] : map) {
    if (detail::has_prefix(name, opt.skip_prefixes)) continue;
    const io::RawTensor* raw = &raw0;
    io::RawTensor adapted;
    const StateTensor<T, D>* dst = own.find(name);
    if (dst && name == opt.input_conv && raw->shape.size() == 4) {
      const Shape& want = std::visit([](const auto& t) -> const Shape& { return t.shape(); }, *dst);
      if (want.rank() == 4 && want[1] == 1 && raw->shape[1] > 1 && raw->shape[0] == want[0] &&
          opt.adapt_input != ChannelAdapt::Error) {
        adapted = detail::adapt_input_channels(name, *raw, opt.adapt_input);
        raw = &adapted;
      }
    }
    Shape shape(std::span<const std::int64_t>(raw->shape.data(), raw->shape.size()));
    const bool as_int = dst ? std::holds_alternative<Tensor<std::int64_t, D>>(*dst)
                            : (raw->dtype == io::DType::I64 || raw->dtype == io::DType::I32);
    if (as_int)
      sd.insert(name, Tensor<std::int64_t, D>::from_vector(detail::convert_raw<std::int64_t>(name, *raw), shape));
    else
      sd.insert(name, Tensor<T, D>::from_vector(detail::convert_raw<T>(name, *raw), shape));
  }
  // Strictness first, so that a failing load changes nothing.
  LoadResult res;
  for (const auto& [name, entry] : own)
    if (!sd.contains(name) && !detail::has_prefix(name, opt.skip_prefixes)) res.missing.push_back(name);
  for (const auto& [name, entry] : sd)
    if (!own.contains(name)) res.unexpected.push_back(name);
  if (opt.strict) {
    std::string msg;
    if (!res.missing.empty()) msg += "; missing keys: " + detail::join(res.missing);
    if (!res.unexpected.empty()) msg += "; unexpected keys: " + detail::join(res.unexpected);
    DML_CHECK(msg.empty(), "load_weights into ", m.type_name(), msg);
  }
  m.load_state_dict(sd, false);  // throws, changing nothing, on shape or type mismatches
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
  io::TensorMap map = io::load_safetensors(path);
  try {
    return load_tensor_map(m, map, opt);
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(path.string(), ": ", e.message()));
  }
}

}  // namespace dml::nn
