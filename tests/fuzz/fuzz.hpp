// tests/fuzz/fuzz.hpp: what every libFuzzer harness shares.
//
// A harness feeds the input to one reader. A dml::Error is the expected answer
// to bad input and must name the file; any other exception, a crash, a
// sanitizer report or a hang is a finding. Each harness also writes its own
// seed corpus: run it with DML_FUZZ_WRITE_SEEDS=<dir> and it writes valid
// files made by dml's own writers into <dir>, then exits.
#pragma once

#include <dml/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dml_fuzz {

inline std::span<const std::byte> bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// Aborts (a finding) when a reader's error does not name the file it read.
inline void expect_names(const dml::Error& e, std::string_view name) {
  if (e.message().find(name) == std::string::npos) {
    std::fprintf(stderr, "fuzz: error message does not name '%.*s': %s\n", static_cast<int>(name.size()),
                 name.data(), e.message().c_str());
    std::abort();
  }
}

// parse(input, name) for a reader that throws dml::Error on bad input: the
// accepted value, or nullopt after checking that the refusal names `name`.
template <class Parse>
auto accepted(Parse&& parse, std::span<const std::byte> input, std::string_view name)
    -> std::optional<decltype(parse(input, name))> {
  try {
    return parse(input, name);
  } catch (const dml::Error& e) {
    expect_names(e, name);
    return std::nullopt;
  }
}

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz: %s\n", what);
  std::abort();
}

inline void write_seed(const std::filesystem::path& dir, const std::string& name, std::span<const std::byte> b) {
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) fail("cannot write a seed");
}
inline void write_seed(const std::filesystem::path& dir, const std::string& name, std::string_view text) {
  write_seed(dir, name, std::span<const std::byte>(reinterpret_cast<const std::byte*>(text.data()), text.size()));
}

// Writes the seeds through `make(dir)` when DML_FUZZ_WRITE_SEEDS is set, then exits.
template <class F>
void seeds_if_asked(F&& make) {
  const char* dir = std::getenv("DML_FUZZ_WRITE_SEEDS");
  if (!dir) return;
  std::filesystem::create_directories(dir);
  make(std::filesystem::path(dir));
  std::exit(0);
}

}  // namespace dml_fuzz

// Defines LLVMFuzzerInitialize writing the harness's seeds (see above).
#define DML_FUZZ_SEEDS(fn)                                                   \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                       \
    dml_fuzz::seeds_if_asked(fn);                                            \
    return 0;                                                                \
  }
