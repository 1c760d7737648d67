// dml/io/safetensors.hpp: read and write the safetensors format.
//
// File layout: 8-byte little-endian header length N, N bytes of JSON header
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}, ...},
// then the data section. Offsets are relative to the data section and must
// tile it exactly (no gap, no overlap, nothing after the last tensor).
#pragma once

#include <dml/config.hpp>
#include <dml/io/file.hpp>
#include <dml/io/json.hpp>
#include <dml/io/raw_tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace dml::io {

// The reference implementation refuses headers above 100 MB; so do we.
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

using StringMap = std::map<std::string, std::string>;

// SafetensorsFile: every tensor of a file plus its "__metadata__" map
// (empty when the file has none).
struct SafetensorsFile {
  TensorMap tensors;
  StringMap metadata;
};

namespace detail {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;  // relative to the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by data offset
  StringMap metadata;
};

inline std::uint64_t non_negative_int(const json::Value& v, const std::string& file,
                                      const std::string& tensor, const char* field) {
  DML_CHECK(v.is_int() && v.as_int() >= 0, file, ": tensor '", tensor, "': ", field,
            " must hold non-negative integers that fit int64");
  return static_cast<std::uint64_t>(v.as_int());
}

// parse_safetensors_header validates the header JSON (which starts at file
// byte 8) against a data section of data_size bytes.
inline SafetensorsHeader parse_safetensors_header(std::string_view text, std::uint64_t data_size,
                                                  const std::string& file) {
  json::Value root;
  try {
    root = json::parse(text);
  } catch (const json::ParseError& e) {
    throw Error(::dml::detail::concat(file, ": invalid JSON header: ", e.reason(), " at byte offset ", 8 + e.offset()));
  }
  DML_CHECK(root.is_object(), file, ": the header is not a JSON object");
  const std::uint64_t data_start = 8 + text.size();
  SafetensorsHeader h;
  for (const auto& [name, v] : root.as_object()) {
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      DML_CHECK(v.is_object(), file, ": __metadata__ must be an object mapping strings to strings");
      for (const auto& [k, s] : v.as_object()) {
        DML_CHECK(s.is_string(), file, ": __metadata__ must map strings to strings, but key '", k,
                  "' holds a non-string");
        h.metadata.emplace(k, s.as_string());
      }
      continue;
    }
    DML_CHECK(v.is_object(), file, ": tensor '", name, "': entry is not an object");
    SafetensorsEntry e{name, DType::F32, {}, 0, 0};
    const json::Value* dtype = v.find("dtype");
    const json::Value* shape = v.find("shape");
    const json::Value* offsets = v.find("data_offsets");
    DML_CHECK(dtype && shape && offsets, file, ": tensor '", name,
              "': entry needs \"dtype\", \"shape\" and \"data_offsets\"");
    DML_CHECK(dtype->is_string(), file, ": tensor '", name, "': dtype is not a string");
    auto parsed = dtype_from_name(dtype->as_string());
    DML_CHECK(parsed.has_value(), file, ": tensor '", name, "': unknown dtype '", dtype->as_string(), "'");
    e.dtype = *parsed;
    DML_CHECK(shape->is_array(), file, ": tensor '", name, "': shape is not an array");
    for (const auto& d : shape->as_array())
      e.shape.push_back(static_cast<std::int64_t>(non_negative_int(d, file, name, "shape")));
    DML_CHECK(offsets->is_array() && offsets->as_array().size() == 2, file, ": tensor '", name,
              "': data_offsets must be an array [begin, end]");
    e.begin = non_negative_int(offsets->as_array()[0], file, name, "data_offsets");
    e.end = non_negative_int(offsets->as_array()[1], file, name, "data_offsets");
    DML_CHECK(e.begin <= e.end, file, ": tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
              "] end before they begin");
    DML_CHECK(e.end <= data_size, file, ": tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
              "] out of range: the data section is ", data_size, " bytes (file byte offset ",
              data_start + e.end, " is past the end)");
    std::int64_t numel = 0;
    try {
      numel = checked_numel(e.shape, dtype_size(e.dtype));
    } catch (const Error& err) {
      throw Error(::dml::detail::concat(file, ": tensor '", name, "': ", err.message()));
    }
    const std::uint64_t want = static_cast<std::uint64_t>(numel) * dtype_size(e.dtype);
    DML_CHECK(want == e.end - e.begin, file, ": tensor '", name, "': shape ", shape_string(e.shape),
              " of dtype ", dtype_name(e.dtype), " needs ", want, " bytes but data_offsets [", e.begin,
              ", ", e.end, "] span ", e.end - e.begin);
    h.entries.push_back(std::move(e));
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t expected = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : h.entries) {
    if (e.begin > expected)
      throw Error(::dml::detail::concat(file, ": gap in the data section: bytes [", expected, ", ", e.begin,
                         ") before tensor '", e.name, "' belong to no tensor (file byte offset ",
                         data_start + expected, ")"));
    if (e.begin < expected)
      throw Error(::dml::detail::concat(file, ": tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end,
                         "] overlap tensor '", prev->name, "' [", prev->begin, ", ", prev->end,
                         "] (file byte offset ", data_start + e.begin, ")"));
    expected = e.end;
    prev = &e;
  }
  DML_CHECK(expected == data_size, file, ": ", data_size - expected,
            " trailing bytes after the last tensor, at file byte offset ", data_start + expected);
  return h;
}

// Reads the 8-byte length and the header through read(offset, out, n).
inline SafetensorsHeader read_safetensors_header(
    std::uint64_t file_size, const std::string& file, std::uint64_t& header_len,
    const std::function<void(std::uint64_t, void*, std::size_t)>& read) {
  DML_CHECK(file_size >= 8, file, ": truncated: the file is ", file_size,
            " bytes, too short for the 8-byte header length");
  unsigned char len[8];
  read(0, len, 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  DML_CHECK(n <= kMaxSafetensorsHeader, file, ": header length ", n, " is too large (limit ",
            kMaxSafetensorsHeader, " bytes)");
  DML_CHECK(n <= file_size - 8, file, ": header length ", n, " runs past the end of the file (",
            file_size, " bytes)");
  std::string text(static_cast<std::size_t>(n), '\0');
  read(8, text.data(), text.size());
  header_len = n;
  return parse_safetensors_header(text, file_size - 8 - n, file);
}

// build_safetensors_header returns the padded header and the tensors in data
// order: descending dtype alignment, then name (the reference writer's order).
inline std::string build_safetensors_header(const TensorMap& tensors, const StringMap& metadata,
                                            std::vector<const TensorMap::value_type*>& order) {
  order.clear();
  for (const auto& kv : tensors) {
    DML_CHECK(kv.first != "__metadata__", "safetensors: '__metadata__' cannot name a tensor");
    try {
      kv.second.validate();
    } catch (const Error& err) {
      throw Error(::dml::detail::concat("safetensors: tensor '", kv.first, "': ", err.message()));
    }
    order.push_back(&kv);
  }
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return a->second.dtype > b->second.dtype;  // std::map already orders by name
  });
  json::Object root;
  if (!metadata.empty()) {
    json::Object meta;
    for (const auto& [k, v] : metadata) meta.emplace_back(k, json::Value(v));
    root.emplace_back("__metadata__", json::Value(std::move(meta)));
  }
  std::uint64_t offset = 0;
  for (const auto* kv : order) {
    const RawTensor& t = kv->second;
    json::Array shape(t.shape.begin(), t.shape.end());
    json::Object info;
    info.emplace_back("dtype", json::Value(dtype_name(t.dtype)));
    info.emplace_back("shape", json::Value(std::move(shape)));
    std::uint64_t end = offset + t.bytes.size();
    info.emplace_back("data_offsets", json::Value(json::Array{json::Value(offset), json::Value(end)}));
    root.emplace_back(kv->first, json::Value(std::move(info)));
    offset = end;
  }
  std::string header = json::dump(json::Value(std::move(root)));
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

inline std::vector<std::span<const std::byte>> safetensors_pieces(
    const std::string& header, const unsigned char (&len)[8],
    const std::vector<const TensorMap::value_type*>& order) {
  std::vector<std::span<const std::byte>> pieces;
  pieces.push_back(std::as_bytes(std::span(len)));
  pieces.push_back(std::as_bytes(std::span(header.data(), header.size())));
  for (const auto* kv : order) pieces.emplace_back(kv->second.bytes);
  return pieces;
}

inline void encode_length(std::uint64_t n, unsigned char (&len)[8]) {
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
}

}  // namespace detail

// parse_safetensors reads a whole safetensors file held in memory; name is
// used in error messages. Throws dml::Error for any malformed input.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> bytes,
                                         std::string_view name = "<memory>") {
  const std::string file(name);
  std::uint64_t n = 0;
  auto read = [&](std::uint64_t offset, void* out, std::size_t count) {
    std::memcpy(out, bytes.data() + offset, count);
  };
  auto header = detail::read_safetensors_header(bytes.size(), file, n, read);
  SafetensorsFile out;
  out.metadata = std::move(header.metadata);
  const std::byte* data = bytes.data() + 8 + n;
  for (auto& e : header.entries) {
    RawTensor t{e.dtype, std::move(e.shape), std::vector<std::byte>(data + e.begin, data + e.end)};
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

// read_safetensors loads every tensor and the metadata of the file at path,
// reading each tensor straight into its buffer. Throws dml::Error naming the
// file (and the byte offset where one applies) when the file is missing or
// malformed: bad length, bad JSON, unknown dtype, bad shape, offsets with a
// gap, an overlap, out of range or not covering the data section exactly,
// duplicate names, non-string metadata.
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  detail::InputFile in(path);
  const std::string file = path.string();
  std::uint64_t n = 0;
  auto read = [&](std::uint64_t offset, void* out, std::size_t count) { in.read(offset, out, count); };
  auto header = detail::read_safetensors_header(in.size(), file, n, read);
  SafetensorsFile out;
  out.metadata = std::move(header.metadata);
  for (auto& e : header.entries) {
    RawTensor t{e.dtype, std::move(e.shape), std::vector<std::byte>(e.end - e.begin)};
    in.read(8 + n + e.begin, t.bytes.data(), t.bytes.size());
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

// load_safetensors returns the tensors of the file at path (metadata dropped).
// Throws as read_safetensors.
inline TensorMap load_safetensors(const std::filesystem::path& path) {
  return read_safetensors(path).tensors;
}

// serialize_safetensors returns the bytes the reference writer produces:
// compact JSON header ("__metadata__" first when non-empty, then tensors in
// data order), padded with spaces to a multiple of 8, then the data sorted by
// descending dtype alignment, then name. Throws dml::Error when a tensor's
// byte count does not match its shape, or a tensor is named "__metadata__".
inline std::vector<std::byte> serialize_safetensors(const TensorMap& tensors,
                                                    const StringMap& metadata = {}) {
  std::vector<const TensorMap::value_type*> order;
  std::string header = detail::build_safetensors_header(tensors, metadata, order);
  unsigned char len[8];
  detail::encode_length(header.size(), len);
  std::vector<std::byte> out;
  for (auto piece : detail::safetensors_pieces(header, len, order))
    out.insert(out.end(), piece.begin(), piece.end());
  return out;
}

// save_safetensors writes serialize_safetensors(tensors, metadata) to path
// atomically (see write_file_atomic) without copying tensor data. Throws
// dml::Error as serialize_safetensors and on any I/O failure.
inline void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                             const StringMap& metadata = {}) {
  std::vector<const TensorMap::value_type*> order;
  std::string header;
  try {
    header = detail::build_safetensors_header(tensors, metadata, order);
  } catch (const Error& err) {
    throw Error(::dml::detail::concat(path.string(), ": ", err.message()));
  }
  unsigned char len[8];
  detail::encode_length(header.size(), len);
  write_file_atomic(path, detail::safetensors_pieces(header, len, order));
}

}  // namespace dml::io
