// Tests for dml/io/raw_tensor.hpp and dml/io/file.hpp.
#include <dml/io/file.hpp>
#include <dml/io/raw_tensor.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_raw_tensor {

namespace fs = std::filesystem;
using namespace dml::io;

namespace {

using dml::testing::TempDir;

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

int count_entries(const fs::path& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("dtype names round trip and sizes match the safetensors table") {
  for (DType t : kAllDTypes) CHECK(dtype_from_name(dtype_name(t)) == t);
  CHECK(dtype_from_name("F128") == std::nullopt);
  CHECK(dtype_from_name("f32") == std::nullopt);  // case matters
  CHECK(dtype_size(DType::BOOL) == 1);
  CHECK(dtype_size(DType::F8_E4M3) == 1);
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(dtype_size(DType::U32) == 4);
  CHECK(dtype_size(DType::F64) == 8);
  CHECK(dtype_size(DType::U64) == 8);
  CHECK(dtype_of<float> == DType::F32);
  CHECK(dtype_of<const double> == DType::F64);
  CHECK(dtype_of<std::int64_t> == DType::I64);
  CHECK(dtype_of<std::uint8_t> == DType::U8);
  static_assert(!Element<bool>);
}

TEST_CASE("checked_numel handles 0-d, zero-size, negative and overflowing shapes") {
  CHECK(checked_numel(std::vector<std::int64_t>{}) == 1);
  CHECK(checked_numel(std::vector<std::int64_t>{2, 3, 4}) == 24);
  CHECK(checked_numel(std::vector<std::int64_t>{5, 0, 7}) == 0);
  CHECK_THROWS_WITH_AS(checked_numel(std::vector<std::int64_t>{2, -1}),
                       doctest::Contains("negative dimension in shape [2, -1]"), dml::Error);
  const std::int64_t big = std::int64_t{1} << 32;
  CHECK_THROWS_WITH_AS(checked_numel(std::vector<std::int64_t>{big, big}), doctest::Contains("overflows"),
                       dml::Error);
  // Fits as an element count, but not as bytes of 8-byte elements.
  CHECK_THROWS_AS(checked_numel(std::vector<std::int64_t>{std::int64_t{1} << 61}, 8), dml::Error);
  CHECK(checked_numel(std::vector<std::int64_t>{std::int64_t{1} << 59}, 8) == std::int64_t{1} << 59);
  // A zero dim makes any product empty, however large the others are.
  CHECK(checked_numel(std::vector<std::int64_t>{big, big, 0}) == 0);
}

TEST_CASE("RawTensor from/as round trip and check dtype and size") {
  std::vector<double> values{1.5, -2.0, 3.25, 0.0, 1e300, -7.0};
  auto t = RawTensor::from(values, {2, 3});
  CHECK(t.dtype == DType::F64);
  CHECK(t.shape == std::vector<std::int64_t>{2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.bytes.size() == 48);
  CHECK(t.as<double>() == values);
  CHECK_THROWS_WITH_AS(t.as<float>(), doctest::Contains("dtype F64, not F32"), dml::Error);

  auto scalar = RawTensor::from(std::vector<std::int64_t>{-9}, {});
  CHECK(scalar.numel() == 1);
  CHECK(scalar.as<std::int64_t>() == std::vector<std::int64_t>{-9});

  auto empty = RawTensor::from(std::vector<float>{}, {4, 0});
  CHECK(empty.bytes.empty());
  CHECK(empty.as<float>().empty());

  std::int32_t raw[4] = {1, -2, 3, -4};
  auto from_ptr = RawTensor::from(raw, {2, 2});
  CHECK(from_ptr.as<std::int32_t>() == std::vector<std::int32_t>{1, -2, 3, -4});

  CHECK_THROWS_WITH_AS(RawTensor::from(values, {4}), doctest::Contains("holds 4 elements but 6 values"),
                       dml::Error);
  t.bytes.pop_back();
  CHECK_THROWS_WITH_AS(t.validate(), doctest::Contains("needs 48 bytes but holds 47"), dml::Error);
  CHECK_THROWS_AS(t.as<double>(), dml::Error);
}

TEST_CASE("write_file_atomic writes pieces, replaces the target and leaves no temporary") {
  TempDir dir;
  auto target = dir.path / "out.bin";
  auto a = bytes_of("hello ");
  auto b = bytes_of("world");
  std::vector<std::span<const std::byte>> pieces{a, std::span<const std::byte>(), b};
  write_file_atomic(target, pieces);
  CHECK(read_file(target) == bytes_of("hello world"));
  write_file_atomic(target, bytes_of("second"));
  CHECK(read_file(target) == bytes_of("second"));
  write_file_atomic(target, std::span<const std::byte>());
  CHECK(read_file(target).empty());
  CHECK(count_entries(dir.path) == 1);
}

TEST_CASE("file helpers report missing files, directories and failed writes") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(read_file(dir.path / "nope.bin"), doctest::Contains("nope.bin: file not found"),
                       dml::Error);
  CHECK_THROWS_WITH_AS(read_file(dir.path), doctest::Contains("is a directory"), dml::Error);
  CHECK_THROWS_WITH_AS(write_file_atomic(dir.path / "missing_dir" / "x.bin", bytes_of("x")),
                       doctest::Contains("x.bin: cannot create"), dml::Error);
  // Renaming over a non-empty directory fails; the temporary is cleaned up.
  fs::create_directories(dir.path / "taken" / "child");
  CHECK_THROWS_WITH_AS(write_file_atomic(dir.path / "taken", bytes_of("x")),
                       doctest::Contains("cannot rename"), dml::Error);
  CHECK(count_entries(dir.path) == 1);
}

TEST_CASE("InputFile reads ranges and refuses to read past the end") {
  TempDir dir;
  auto path = dir.path / "five.bin";
  write_file_atomic(path, bytes_of("01234"));
  detail::InputFile in(path);
  CHECK(in.size() == 5);
  char buf[3] = {};
  in.read(2, buf, 3);
  CHECK(std::string(buf, 3) == "234");
  in.read(5, buf, 0);
  CHECK_THROWS_WITH_AS(in.read(3, buf, 3), doctest::Contains("five.bin: unexpected end of file"),
                       dml::Error);
  CHECK_THROWS_AS(in.read(6, buf, 0), dml::Error);
}

}  // namespace test_raw_tensor
