// dml/config.hpp: compiler portability macros and the library's error type.
#pragma once

#include <cstdint>
#include <sstream>
#include <version>
#if __has_include(<source_location>)
#include <source_location>
#endif
#include <stdexcept>
#include <string>
#include <utility>

// DML_HD marks functions that run on both host and device. Under nvcc they are
// compiled for both; a host compiler sees plain inline functions.
#if defined(__CUDACC__)
#define DML_HD __host__ __device__ __forceinline__
#else
#define DML_HD inline
#endif

namespace dml {

// Where an Error was raised. std::source_location where the standard library
// has it; otherwise (clang 14 with libstdc++ 12) the same two fields from the
// compiler builtins.
#if defined(__cpp_lib_source_location)
using SourceLocation = std::source_location;
#else
struct SourceLocation {
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          std::uint_least32_t line = __builtin_LINE()) noexcept {
    SourceLocation s;
    s.file_ = file;
    s.line_ = line;
    return s;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }

 private:
  const char* file_ = "";
  std::uint_least32_t line_ = 0;
};
#endif

// Error is thrown for bad input: a shape mismatch, a malformed file, a bad
// argument. what() and message() hold the message a user reads; where() holds
// the library's source location that raised it ("dml/io/npy.hpp:120"), for
// bug reports. Building with DML_ERROR_LOCATION defined to 1 appends
// " [at <where>]" to what() as well.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message,
                 SourceLocation where = SourceLocation::current())
      : std::runtime_error(what_text(message, where)),
        message_(message),
        file_(where.file_name()),
        line_(where.line()) {}

  // The message without any location suffix.
  const std::string& message() const noexcept { return message_; }
  // "file:line" where the error was raised, the path shortened to "dml/...".
  std::string where() const { return short_file(file_) + ":" + std::to_string(line_); }
  const char* file() const noexcept { return file_; }
  std::uint_least32_t line() const noexcept { return line_; }

 private:
  static std::string short_file(const char* path) {
    std::string p(path);
    auto pos = p.rfind("include/dml/");
    return pos == std::string::npos ? p : p.substr(pos + 8);
  }
  static std::string what_text(const std::string& message, const SourceLocation& where) {
#if defined(DML_ERROR_LOCATION) && DML_ERROR_LOCATION
    return message + " [at " + short_file(where.file_name()) + ":" + std::to_string(where.line()) + "]";
#else
    (void)where;
    return message;
#endif
  }
  std::string message_;
  const char* file_;
  std::uint_least32_t line_;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace dml

// DML_CHECK(cond, parts...) throws dml::Error built from the streamed parts
// when cond is false. For bad input only; internal invariants use assert.
#define DML_CHECK(cond, ...)                                     \
  do {                                                           \
    if (!(cond)) throw ::dml::Error(::dml::detail::concat(__VA_ARGS__)); \
  } while (0)
