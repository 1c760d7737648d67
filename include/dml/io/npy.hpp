// dml/io/npy.hpp: read and write NumPy .npy files (C order, little-endian).
//
// Writes version 1.0 with the header byte-for-byte as NumPy 1.24 writes it
// (2.0 when the header would not fit 65535 bytes, as NumPy does); reads 1.0,
// 2.0 and 3.0.
#pragma once

#include <dml/config.hpp>
#include <dml/io/file.hpp>
#include <dml/io/raw_tensor.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dml::io {

// An .npy array: dtype, C-order shape, bytes.
using NpyArray = RawTensor;

// Headers longer than this are refused (NumPy itself never writes one above a
// few hundred bytes).
inline constexpr std::uint32_t kMaxNpyHeader = 1u << 20;

namespace detail {

inline constexpr char kNpyMagic[] = "\x93NUMPY";  // 6 bytes + NUL
// NumPy pads the header so that data starts on a 64-byte boundary.
inline constexpr std::size_t kNpyAlign = 64;
// NumPy >= 1.24 leaves room to grow the first axis to this many digits.
inline constexpr std::size_t kNpyGrowthDigits = 21;

inline std::optional<std::string_view> npy_descr(DType t) {
  switch (t) {
    case DType::BOOL: return "|b1";
    case DType::U8: return "|u1";
    case DType::I8: return "|i1";
    case DType::I16: return "<i2";
    case DType::U16: return "<u2";
    case DType::F16: return "<f2";
    case DType::I32: return "<i4";
    case DType::U32: return "<u4";
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::I64: return "<i8";
    case DType::U64: return "<u8";
    default: return std::nullopt;
  }
}

inline std::optional<DType> npy_dtype(std::string_view descr) {
  for (DType t : kAllDTypes) {
    auto d = npy_descr(t);
    if (!d) continue;
    if (*d == descr) return t;
    // Single-byte types read the same with any byte-order mark.
    if ((*d)[0] == '|' && descr.size() == 3 && (descr[0] == '<' || descr[0] == '=') &&
        descr.substr(1) == d->substr(1))
      return t;
  }
  return std::nullopt;
}

// Reads the Python dict literal NumPy writes: {'descr': '<f4',
// 'fortran_order': False, 'shape': (3, 4), }.
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, std::size_t base, const std::string& file)
      : s_(text), base_(base), file_(file) {}

  void parse(DType& dtype, std::vector<std::int64_t>& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') { ++pos_; break; }
      std::size_t key_at = pos_;
      std::string key = string_lit();
      ws();
      expect(':');
      ws();
      if (key == "descr" && !have_descr) {
        have_descr = true;
        std::size_t at = pos_;
        std::string descr = string_lit();
        auto t = npy_dtype(descr);
        if (!t && !descr.empty() && descr[0] == '>')
          fail_at("big-endian dtype '" + descr + "' is not supported", at);
        if (!t) fail_at("unsupported dtype descr '" + descr + "'", at);
        dtype = *t;
      } else if (key == "fortran_order" && !have_order) {
        have_order = true;
        std::size_t at = pos_;
        if (word("True"))
          fail_at("fortran_order is True: column-major arrays are not supported "
                  "(save np.ascontiguousarray(a))", at);
        if (!word("False")) fail("fortran_order must be True or False");
      } else if (key == "shape" && !have_shape) {
        have_shape = true;
        shape = tuple();
      } else if (key == "descr" || key == "fortran_order" || key == "shape") {
        fail_at("duplicate key '" + key + "' in header", key_at);
      } else {
        fail_at("unexpected key '" + key + "' in header", key_at);
      }
      ws();
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == '}') { ++pos_; break; }
      fail("expected ',' or '}' in header dict");
    }
    ws();
    if (pos_ != s_.size()) fail("unexpected characters after the header dict");
    if (!have_descr) fail("header lacks 'descr'");
    if (!have_order) fail("header lacks 'fortran_order'");
    if (!have_shape) fail("header lacks 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { fail_at(why, pos_); }
  [[noreturn]] void fail_at(const std::string& why, std::size_t at) const {
    throw Error(::dml::detail::concat(file_, ": bad .npy header: ", why, " at byte offset ", base_ + at));
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  std::string string_lit() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    std::size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\' || s_[pos_] == '\n') fail("unsupported character in string");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(start, pos_++ - start));
  }
  std::vector<std::int64_t> tuple() {
    std::vector<std::int64_t> dims;
    expect('(');
    bool trailing_comma = false;
    for (;;) {
      ws();
      if (peek() == ')') { ++pos_; break; }
      std::size_t at = pos_;
      if (peek() == '-') fail("negative dimension in shape");
      std::int64_t d = 0;
      auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + s_.size(), d);
      if (ec == std::errc::result_out_of_range) fail_at("dimension too large in shape", at);
      if (ec != std::errc()) fail("expected an integer in shape");
      pos_ = static_cast<std::size_t>(p - s_.data());
      dims.push_back(d);
      ws();
      trailing_comma = false;
      if (peek() == ',') { ++pos_; trailing_comma = true; continue; }
      if (peek() == ')') { ++pos_; break; }
      fail("expected ',' or ')' in shape");
    }
    if (dims.size() == 1 && !trailing_comma) fail("shape is not a tuple: a 1-d shape needs a trailing comma");
    return dims;
  }

  std::string_view s_;
  std::size_t base_;
  const std::string& file_;
  std::size_t pos_ = 0;
};

// Reads and validates magic, version and header through read(offset, out, n);
// returns the byte offset where the payload starts.
inline std::uint64_t read_npy_header(std::uint64_t size, const std::string& file, NpyArray& out,
                                     const std::function<void(std::uint64_t, void*, std::size_t)>& read) {
  DML_CHECK(size >= 10, file, ": truncated: ", size, " bytes is too short for an .npy file");
  unsigned char pre[12] = {};
  read(0, pre, 8);
  DML_CHECK(std::memcmp(pre, kNpyMagic, 6) == 0, file, ": not an .npy file (bad magic at byte offset 0)");
  const int major = pre[6], minor = pre[7];
  DML_CHECK((major == 1 || major == 2 || major == 3) && minor == 0, file, ": unsupported .npy version ",
            major, ".", minor, " (byte offset 6)");
  std::uint64_t start = major == 1 ? 10 : 12;
  DML_CHECK(size >= start, file, ": truncated: ", size, " bytes is too short for an .npy file");
  read(8, pre + 8, start - 8);
  std::uint64_t hlen = major == 1 ? (pre[8] | (std::uint32_t{pre[9]} << 8))
                                  : (pre[8] | (std::uint32_t{pre[9]} << 8) | (std::uint32_t{pre[10]} << 16) |
                                     (std::uint32_t{pre[11]} << 24));
  DML_CHECK(hlen <= kMaxNpyHeader, file, ": header length ", hlen, " is too large (limit ",
            kMaxNpyHeader, ")");
  DML_CHECK(hlen <= size - start, file, ": truncated: header length ", hlen,
            " runs past the end of the file (", size, " bytes)");
  std::string text(static_cast<std::size_t>(hlen), '\0');
  read(start, text.data(), text.size());
  NpyHeaderParser(text, start, file).parse(out.dtype, out.shape);
  const std::uint64_t data_start = start + hlen;
  std::int64_t numel = 0;
  try {
    numel = checked_numel(out.shape, dtype_size(out.dtype));
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(file, ": ", e.message()));
  }
  const std::uint64_t want = static_cast<std::uint64_t>(numel) * dtype_size(out.dtype);
  const std::uint64_t have = size - data_start;
  DML_CHECK(have >= want, file, ": truncated payload: shape ", shape_string(out.shape), " of ",
            dtype_name(out.dtype), " needs ", want, " bytes after byte offset ", data_start, ", the file has ", have);
  DML_CHECK(have == want, file, ": ", have - want, " trailing bytes after the payload, at byte offset ",
            data_start + want);
  return data_start;
}

inline std::string npy_header(DType dtype, std::span<const std::int64_t> shape, const std::string& file) {
  auto descr = npy_descr(dtype);
  DML_CHECK(descr.has_value(), file, ": dtype ", dtype_name(dtype), " has no .npy equivalent");
  try {
    checked_numel(shape, dtype_size(dtype));
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(file, ": ", e.message()));
  }
  std::string dict = "{'descr': '" + std::string(*descr) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(shape[i]);
  }
  dict += shape.size() == 1 ? ",), }" : "), }";
  if (!shape.empty()) {
    std::size_t digits = std::to_string(shape[0]).size();
    if (digits < kNpyGrowthDigits) dict.append(kNpyGrowthDigits - digits, ' ');
  }
  const std::size_t hlen = dict.size() + 1;  // + '\n'
  std::size_t pad = kNpyAlign - (10 + hlen) % kNpyAlign;  // magic+version 8, length 2
  std::string out(kNpyMagic, 6);
  if (hlen + pad <= 0xFFFF) {
    out += '\x01';
    out += '\x00';
    std::size_t n = hlen + pad;
    out += static_cast<char>(n & 0xFF);
    out += static_cast<char>(n >> 8);
  } else {
    pad = kNpyAlign - (12 + hlen) % kNpyAlign;
    out += '\x02';
    out += '\x00';
    std::size_t n = hlen + pad;
    for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFF);
  }
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

}  // namespace detail

// npy_header returns the magic, version, length and padded header dict that
// NumPy writes for a C-order array of this dtype and shape. Throws dml::Error
// for a dtype without an .npy equivalent (BF16, F8) or a bad shape.
inline std::string npy_header(DType dtype, std::span<const std::int64_t> shape) {
  return detail::npy_header(dtype, shape, "npy");
}

// serialize_npy returns the whole .npy file for t. Throws as npy_header and
// when t's byte count does not match its shape.
inline std::vector<std::byte> serialize_npy(const RawTensor& t) {
  t.validate();
  std::string header = npy_header(t.dtype, t.shape);
  std::vector<std::byte> out(header.size() + t.bytes.size());
  std::memcpy(out.data(), header.data(), header.size());
  if (!t.bytes.empty()) std::memcpy(out.data() + header.size(), t.bytes.data(), t.bytes.size());
  return out;
}

// parse_npy reads an .npy file held in memory; name is used in error
// messages. Throws dml::Error for a bad magic, version, header, dtype,
// fortran_order True, or a payload that is not exactly the array's size.
inline NpyArray parse_npy(std::span<const std::byte> bytes, std::string_view name = "<memory>") {
  const std::string file(name);
  NpyArray out;
  auto read = [&](std::uint64_t offset, void* dst, std::size_t n) {
    std::memcpy(dst, bytes.data() + offset, n);
  };
  auto start = detail::read_npy_header(bytes.size(), file, out, read);
  out.bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(start), bytes.end());
  return out;
}

// load_npy reads the .npy file at path. Throws dml::Error naming the file as
// parse_npy does, and when the file is missing or unreadable.
inline NpyArray load_npy(const std::filesystem::path& path) {
  detail::InputFile in(path);
  const std::string file = path.string();
  NpyArray out;
  auto read = [&](std::uint64_t offset, void* dst, std::size_t n) { in.read(offset, dst, n); };
  auto start = detail::read_npy_header(in.size(), file, out, read);
  out.bytes.resize(static_cast<std::size_t>(in.size() - start));
  in.read(start, out.bytes.data(), out.bytes.size());
  return out;
}

// save_npy writes t to path atomically (see write_file_atomic). Throws
// dml::Error naming path for a dtype without an .npy equivalent, a byte count
// that does not match the shape, or an I/O failure.
inline void save_npy(const std::filesystem::path& path, const RawTensor& t) {
  const std::string file = path.string();
  try {
    t.validate();
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(file, ": ", e.message()));
  }
  std::string header = detail::npy_header(t.dtype, t.shape, file);
  std::span<const std::byte> pieces[] = {std::as_bytes(std::span(header.data(), header.size())), t.bytes};
  write_file_atomic(path, std::span<const std::span<const std::byte>>(pieces));
}

// save_npy writes numel(shape) elements of data, C order, to path atomically.
// Throws dml::Error naming path for a bad shape or an I/O failure.
template <Element T>
void save_npy(const std::filesystem::path& path, const T* data, const std::vector<std::int64_t>& shape) {
  const std::string file = path.string();
  std::string header = detail::npy_header(dtype_of<T>, shape, file);
  auto n = static_cast<std::size_t>(checked_numel(shape, sizeof(T)));
  std::span<const std::byte> pieces[] = {std::as_bytes(std::span(header.data(), header.size())),
                                         std::as_bytes(std::span(data, n))};
  write_file_atomic(path, std::span<const std::span<const std::byte>>(pieces));
}

// save_npy writes values with the given shape; throws dml::Error naming path
// unless values.size() == numel(shape), and as above.
template <Element T>
void save_npy(const std::filesystem::path& path, const std::vector<T>& values,
              const std::vector<std::int64_t>& shape) {
  std::int64_t n = 0;
  try {
    n = checked_numel(shape, sizeof(T));
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(path.string(), ": ", e.message()));
  }
  DML_CHECK(static_cast<std::uint64_t>(n) == values.size(), path.string(), ": shape ", shape_string(shape),
            " holds ", n, " elements but ", values.size(), " values were given");
  save_npy(path, values.data(), shape);
}

}  // namespace dml::io
