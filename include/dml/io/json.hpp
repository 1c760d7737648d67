// dml/io/json.hpp: a small strict JSON (RFC 8259) reader and writer.
//
// Objects keep their insertion order; duplicate keys, comments, trailing
// commas, NaN/Infinity, leading zeros, invalid UTF-8 and lone surrogates are
// errors. Integers that fit int64 stay integers; other numbers are doubles.
#pragma once

#include <dml/config.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dml::io::json {

inline constexpr int kDefaultMaxDepth = 128;

// ParseError is the dml::Error thrown by parse; offset() is the byte offset
// into the text and reason() the message without it.
class ParseError : public Error {
 public:
  ParseError(std::string reason, std::size_t offset,
             SourceLocation where = SourceLocation::current())
      : Error("json: " + reason + " at byte " + std::to_string(offset), where),
        reason_(std::move(reason)),
        offset_(offset) {}
  const std::string& reason() const noexcept { return reason_; }
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::string reason_;
  std::size_t offset_;
};

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;
enum class Kind { Null, Bool, Int, Double, String, Array, Object };

// Value is one JSON value. The as_* accessors throw dml::Error on a kind mismatch.
class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : data_(b) {}
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  Value(I i) : data_(static_cast<std::int64_t>(i)) {
    if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t))
      DML_CHECK(i <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                "json: integer ", i, " does not fit int64");
  }
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(std::string_view s) : data_(std::string(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(Array a) : data_(std::move(a)) {}
  Value(Object o) : data_(std::move(o)) {}

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_null() const { return kind() == Kind::Null; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_number() const { return kind() == Kind::Int || kind() == Kind::Double; }
  bool is_string() const { return kind() == Kind::String; }
  bool is_array() const { return kind() == Kind::Array; }
  bool is_object() const { return kind() == Kind::Object; }

  bool as_bool() const { return get<bool>("a bool"); }
  std::int64_t as_int() const { return get<std::int64_t>("an integer"); }
  // as_double returns a Double, or an Int converted to double.
  double as_double() const {
    if (is_int()) return static_cast<double>(std::get<std::int64_t>(data_));
    return get<double>("a number");
  }
  const std::string& as_string() const { return get<std::string>("a string"); }
  const Array& as_array() const { return get<Array>("an array"); }
  Array& as_array() { return const_cast<Array&>(std::as_const(*this).as_array()); }
  const Object& as_object() const { return get<Object>("an object"); }
  Object& as_object() { return const_cast<Object&>(std::as_const(*this).as_object()); }

  // find returns the member named key, or nullptr; throws unless an object.
  const Value* find(std::string_view key) const {
    for (const auto& [k, v] : as_object())
      if (k == key) return &v;
    return nullptr;
  }
  // at returns the member named key; throws dml::Error naming key when absent.
  const Value& at(std::string_view key) const {
    const Value* v = find(key);
    DML_CHECK(v != nullptr, "json: missing key \"", key, "\"");
    return *v;
  }
  // set replaces the member named key or appends it; a null becomes an object.
  Value& set(std::string key, Value value) {
    if (is_null()) data_ = Object{};
    for (auto& [k, v] : as_object())
      if (k == key) return v = std::move(value);
    return as_object().emplace_back(std::move(key), std::move(value)).second;
  }

  friend bool operator==(const Value& a, const Value& b) { return a.data_ == b.data_; }

 private:
  template <class T>
  const T& get(const char* what) const {
    static constexpr const char* kNames[] = {"null", "a bool", "an integer", "a double",
                                             "a string", "an array", "an object"};
    DML_CHECK(std::holds_alternative<T>(data_), "json: expected ", what, ", got ",
              kNames[data_.index()]);
    return std::get<T>(data_);
  }
  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Array, Object> data_;
};

struct ParseOptions {
  int max_depth = kDefaultMaxDepth;  // arrays + objects nested deeper than this are an error
};

namespace detail {

// utf8_length returns the length of the valid UTF-8 sequence at s[i], or 0.
inline std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options) : s_(text), opt_(options) {}

  Value parse_document() {
    skip_ws();
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(std::string reason) const { fail_at(std::move(reason), pos_); }
  [[noreturn]] void fail_at(std::string reason, std::size_t at) const {
    throw ParseError(std::move(reason), at);
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }

  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  void expect_literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    switch (peek()) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value(parse_string());
      case 't': expect_literal("true"); return Value(true);
      case 'f': expect_literal("false"); return Value(false);
      case 'n': expect_literal("null"); return Value(nullptr);
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail(std::string("unexpected character '") + peek() + "'");
    }
  }

  void enter(int depth) {
    if (depth > opt_.max_depth)
      fail("nesting deeper than the limit of " + std::to_string(opt_.max_depth));
  }

  Value parse_array(int depth) {
    enter(depth);
    ++pos_;
    Array items;
    skip_ws();
    if (!at_end() && peek() == ']') { ++pos_; return Value(std::move(items)); }
    for (;;) {
      skip_ws();
      items.push_back(parse_value(depth));
      skip_ws();
      if (at_end()) fail("unexpected end of input in array");
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == ']') { ++pos_; return Value(std::move(items)); }
      fail("expected ',' or ']' in array");
    }
  }

  Value parse_object(int depth) {
    enter(depth);
    ++pos_;
    Object members;
    std::vector<std::size_t> key_offsets;
    skip_ws();
    if (!at_end() && peek() == '}') { ++pos_; return Value(std::move(members)); }
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') fail("expected a string key in object");
      key_offsets.push_back(pos_);
      std::string key = parse_string();
      skip_ws();
      if (at_end() || peek() != ':') fail("expected ':' after object key");
      ++pos_;
      skip_ws();
      Value v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (at_end()) fail("unexpected end of input in object");
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == '}') { ++pos_; break; }
      fail("expected ',' or '}' in object");
    }
    // Duplicate keys: sort indices by key, report the later of an equal pair.
    std::vector<std::size_t> idx(members.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
      return members[a].first != members[b].first ? members[a].first < members[b].first : a < b;
    });
    for (std::size_t i = 1; i < idx.size(); ++i)
      if (members[idx[i]].first == members[idx[i - 1]].first)
        fail_at("duplicate key \"" + members[idx[i]].first + "\"", key_offsets[idx[i]]);
    return Value(std::move(members));
  }

  std::uint32_t parse_hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail_at("invalid hex digit in \\u escape", pos_ - 1);
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      auto c = static_cast<unsigned char>(peek());
      if (c == '"') { ++pos_; return out; }
      if (c < 0x20) fail("unescaped control character in string");
      if (c == '\\') {
        std::size_t esc = pos_++;
        if (at_end()) fail("unterminated string");
        char e = s_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = parse_hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in \\u escape", esc);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s_.substr(pos_, 2) != "\\u") fail_at("high surrogate not followed by a low surrogate", esc);
              pos_ += 2;
              std::uint32_t lo = parse_hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail_at("high surrogate not followed by a low surrogate", esc);
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: fail_at(std::string("invalid escape '\\") + e + "'", esc);
        }
        continue;
      }
      std::size_t n = utf8_length(s_, pos_);
      if (n == 0) fail("invalid UTF-8 in string");
      out.append(s_.substr(pos_, n));
      pos_ += n;
    }
  }

  Value parse_number() {
    std::size_t start = pos_;
    auto digit = [&] { return !at_end() && peek() >= '0' && peek() <= '9'; };
    if (peek() == '-') ++pos_;
    if (!digit()) fail("invalid number");
    if (peek() == '0') {
      ++pos_;
      if (digit()) fail_at("leading zero in number", start);
    } else {
      while (digit()) ++pos_;
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      if (!digit()) fail("expected a digit after '.'");
      while (digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!digit()) fail("expected a digit in exponent");
      while (digit()) ++pos_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      std::int64_t i = 0;
      auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && p == last) return Value(i);
    }
    double d = 0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || p != last || !std::isfinite(d)) fail_at("number out of range", start);
    return Value(d);
  }

  std::string_view s_;
  ParseOptions opt_;
  std::size_t pos_ = 0;
};

inline void dump_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t n = utf8_length(s, i);
      DML_CHECK(n != 0, "json: cannot write a string with invalid UTF-8 (byte ", i, ")");
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

inline void dump_value(std::string& out, const Value& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent * lvl), ' ');
  };
  switch (v.kind()) {
    case Kind::Null: out += "null"; break;
    case Kind::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Kind::Int: out += std::to_string(v.as_int()); break;
    case Kind::Double: {
      double d = v.as_double();
      DML_CHECK(std::isfinite(d), "json: cannot write a non-finite number (", d, ")");
      char buf[64];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest round trip
      std::string_view text(buf, static_cast<std::size_t>(p - buf));
      out += text;
      if (text.find_first_of(".e") == std::string_view::npos) out += ".0";  // stays a double
      break;
    }
    case Kind::String: dump_string(out, v.as_string()); break;
    case Kind::Array: {
      const auto& a = v.as_array();
      out += '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        dump_value(out, a[i], indent, level + 1);
      }
      if (!a.empty()) newline(level);
      out += ']';
      break;
    }
    case Kind::Object: {
      const auto& o = v.as_object();
      out += '{';
      for (std::size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        dump_string(out, o[i].first);
        out += indent < 0 ? ":" : ": ";
        dump_value(out, o[i].second, indent, level + 1);
      }
      if (!o.empty()) newline(level);
      out += '}';
      break;
    }
  }
}

}  // namespace detail

// parse reads one JSON document (surrounding whitespace allowed). Throws
// json::ParseError (a dml::Error) naming the problem and its byte offset.
inline Value parse(std::string_view text, const ParseOptions& options = {}) {
  return detail::Parser(text, options).parse_document();
}

// dump writes v compactly (indent < 0, no spaces, as serde_json does) or
// pretty-printed with indent spaces per level. Doubles use the shortest form
// that reads back exactly. Throws dml::Error on NaN/Inf or invalid UTF-8.
inline std::string dump(const Value& v, int indent = -1) {
  std::string out;
  detail::dump_value(out, v, indent, 0);
  return out;
}

}  // namespace dml::io::json
