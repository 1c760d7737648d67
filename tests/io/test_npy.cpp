#include <dml/io/npy.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../support/error_of.hpp"
#include "../support/temp_dir.hpp"

#ifndef DML_TEST_DATA_DIR
#error "DML_TEST_DATA_DIR must name tests/fixtures"
#endif

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_npy {

namespace fs = std::filesystem;
using namespace dml::io;

namespace {

using dml::testing::TempDir;

fs::path fixture(const std::string& name) { return fs::path(DML_TEST_DATA_DIR) / "io" / name; }

using dml::testing::contains;
using dml::testing::error_of;

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string text_of(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// An .npy file with the given header dict (padded to 64 bytes) and payload.
std::vector<std::byte> make_npy(const std::string& dict, std::size_t payload, int major = 1) {
  std::size_t prefix = major == 1 ? 10 : 12;
  std::string h = dict;
  h.append((64 - (prefix + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((h.size() >> (8 * i)) & 0xFF);
  out += h;
  out.append(payload, '\x11');
  return bytes_of(out);
}

struct NumpyFixture {
  std::string file;
  RawTensor tensor;
};

// The arrays gen_io.py saves with np.save, rebuilt here.
std::vector<NumpyFixture> numpy_fixtures() {
  std::vector<float> f4;
  for (int i = 0; i < 12; ++i) f4.push_back(static_cast<float>((i - 5) / 3.0));
  std::vector<double> f8;
  for (int i = 0; i < 5; ++i) f8.push_back((i - 2) / 7.0);
  std::vector<std::uint8_t> u8;
  for (int i = 0; i < 24; ++i) u8.push_back(static_cast<std::uint8_t>(i * 11 % 256));
  return {
      {"f4_3x4.npy", RawTensor::from(f4, {3, 4})},
      {"f8_5.npy", RawTensor::from(f8, {5})},
      {"i8_scalar.npy", RawTensor::from(std::vector<std::int64_t>{-42}, {})},
      {"i4_2x0x3.npy", RawTensor::from(std::vector<std::int32_t>{}, {2, 0, 3})},
      {"u8_2x3x4.npy", RawTensor::from(u8, {2, 3, 4})},
      {"f8_rank10.npy", RawTensor::from(std::vector<double>{0, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 2})},
      {"f8_wide_first_axis.npy", RawTensor::from(std::vector<double>{}, {12345678901, 0})},
  };
}

}  // namespace

TEST_CASE("npy_header is the exact header NumPy writes") {
  std::string want("\x93NUMPY\x01\x00\x76\x00", 10);
  want += "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
  want.append(128 - 1 - want.size(), ' ');
  want += '\n';
  CHECK(npy_header(DType::F32, std::vector<std::int64_t>{3, 4}) == want);
  CHECK(contains(npy_header(DType::I64, std::vector<std::int64_t>{5}), "'shape': (5,), }"));
  CHECK(contains(npy_header(DType::F64, std::vector<std::int64_t>{}), "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"));
  CHECK(contains(npy_header(DType::U8, std::vector<std::int64_t>{1}), "'descr': '|u1'"));
}

TEST_CASE("dml writes every NumPy fixture byte for byte and reads it back") {
  TempDir dir;
  for (const auto& f : numpy_fixtures()) {
    CAPTURE(f.file);
    auto numpy_bytes = read_file(fixture(f.file));
    CHECK(serialize_npy(f.tensor) == numpy_bytes);
    CHECK(load_npy(fixture(f.file)) == f.tensor);
    auto out = dir.path / f.file;
    save_npy(out, f.tensor);
    CHECK(read_file(out) == numpy_bytes);
  }
}

TEST_CASE("npy headers align to 64 bytes for any rank, and switch to version 2.0 past 65535") {
  for (std::size_t rank = 0; rank <= 40; ++rank) {
    std::vector<std::int64_t> shape;
    for (std::size_t i = 0; i < rank; ++i) shape.push_back(static_cast<std::int64_t>(i % 3 == 0 ? 0 : 1000 * i));  // numel 0 past rank 0
    auto h = npy_header(DType::F32, shape);
    CAPTURE(rank);
    CHECK(h.size() % 64 == 0);
    CHECK(h[6] == '\x01');
    CHECK(h.back() == '\n');
    auto back = parse_npy(serialize_npy(RawTensor{DType::F32, shape, std::vector<std::byte>(
        static_cast<std::size_t>(checked_numel(shape) * 4))}));
    CHECK(back.shape == shape);
  }
  std::vector<std::int64_t> wide(30000, 1);
  auto h = npy_header(DType::U8, wide);
  CHECK(h.size() % 64 == 0);
  CHECK(h[6] == '\x02');
  CHECK(h.size() > 65535);
  auto back = parse_npy(serialize_npy(RawTensor{DType::U8, wide, {std::byte{7}}}));
  CHECK(back.shape == wide);
  CHECK(back.bytes == std::vector<std::byte>{std::byte{7}});
}

TEST_CASE("npy reads version 2.0 written by NumPy") {
  auto t = load_npy(fixture("f4_v2.npy"));
  CHECK(t.dtype == DType::F32);
  CHECK(t.shape == std::vector<std::int64_t>{3});
  CHECK(t.as<float>() == std::vector<float>{1.5f, -2.25f, 3.0f});
  auto v3 = make_npy("{'descr': '<i2', 'fortran_order': False, 'shape': (1,), }", 2, 3);
  CHECK(parse_npy(v3).shape == std::vector<std::int64_t>{1});
}

TEST_CASE("npy round trips every supported dtype through files") {
  TempDir dir;
  auto p = dir.path / "a.npy";
  save_npy(p, std::vector<float>{1.f, -2.f, 3.5f, 0.f, 1e-30f, -7.f}, {2, 3});
  CHECK(load_npy(p).as<float>() == std::vector<float>{1.f, -2.f, 3.5f, 0.f, 1e-30f, -7.f});
  CHECK(load_npy(p).shape == std::vector<std::int64_t>{2, 3});
  const double d[4] = {0.1, -1e300, 5e-324, 2.0};
  save_npy(p, d, {2, 1, 2});
  CHECK(load_npy(p) == RawTensor::from(d, {2, 1, 2}));
  save_npy(p, std::vector<std::int64_t>{-5}, {});
  CHECK(load_npy(p).as<std::int64_t>() == std::vector<std::int64_t>{-5});
  CHECK(load_npy(p).shape.empty());
  save_npy(p, std::vector<std::int32_t>{}, {0, 4});
  CHECK(load_npy(p) == RawTensor::from(std::vector<std::int32_t>{}, {0, 4}));
  save_npy(p, std::vector<std::uint8_t>{0, 255, 9}, {3});
  CHECK(load_npy(p).as<std::uint8_t>() == std::vector<std::uint8_t>{0, 255, 9});
  const RawTensor others[] = {
      RawTensor::from(std::vector<std::int8_t>{-1, 2}, {2}),
      RawTensor::from(std::vector<std::int16_t>{-300}, {1, 1, 1, 1, 1}),
      RawTensor::from(std::vector<std::uint16_t>{65535}, {1}),
      RawTensor::from(std::vector<std::uint32_t>{4000000000u, 1}, {2}),
      RawTensor::from(std::vector<std::uint64_t>{~std::uint64_t{0}}, {1}),
      RawTensor{DType::F16, {2}, bytes_of(std::string("\x00\x3c\x00\xc0", 4))},
      RawTensor{DType::BOOL, {3}, bytes_of(std::string("\x01\x00\x01", 3))},
  };
  for (const auto& t : others) {
    CAPTURE(dtype_name(t.dtype));
    save_npy(p, t);
    CHECK(load_npy(p) == t);
  }
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("save_npy rejects what .npy cannot hold, naming the file") {
  TempDir dir;
  auto p = dir.path / "bad.npy";
  RawTensor bf16{DType::BF16, {1}, std::vector<std::byte>(2)};
  CHECK(contains(error_of([&] { save_npy(p, bf16); }), "bad.npy: dtype BF16 has no .npy equivalent"));
  CHECK(contains(error_of([&] { save_npy(p, std::vector<float>{1, 2, 3}, {2, 2}); }),
                 "bad.npy: shape [2, 2] holds 4 elements but 3 values were given"));
  RawTensor short_bytes{DType::F64, {2}, std::vector<std::byte>(15)};
  CHECK(contains(error_of([&] { save_npy(p, short_bytes); }), "bad.npy: tensor of dtype F64 and shape [2] needs 16 bytes"));
  CHECK(contains(error_of([&] { save_npy(p, std::vector<float>{}, {-1}); }), "bad.npy: negative dimension"));
  const float x = 1.f;
  CHECK(contains(error_of([&] { save_npy(p, &x, {2, -2}); }), "bad.npy: negative dimension"));
  CHECK(contains(error_of([&] { save_npy(dir.path / "no" / "x.npy", &x, {1}); }), "x.npy: cannot create"));
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("malformed .npy files throw dml::Error naming the file and the problem") {
  TempDir dir;
  const auto good = read_file(fixture("f4_3x4.npy"));  // 128-byte header + 48-byte payload
  auto edit = [&](std::size_t at, const std::string& with) {
    auto b = good;
    std::memcpy(b.data() + at, with.data(), with.size());
    return b;
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    auto s = text_of(good);
    auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return bytes_of(s.replace(at, from.size(), to));
  };
  auto dropped = good;
  dropped.pop_back();
  auto extra = good;
  extra.push_back(std::byte{0});
  const std::string v2_huge("\x93NUMPY\x02\x00\x00\x00\x00\x80", 12);
  const std::string d = "'fortran_order': False, ";
  struct Case {
    std::string name;
    std::vector<std::byte> bytes;
    std::string phrase;
  };
  const Case cases[] = {
      {"magic", edit(1, "X"), "not an .npy file (bad magic at byte offset 0)"},
      {"version", edit(6, "\x04"), "unsupported .npy version 4.0 (byte offset 6)"},
      {"minor", edit(7, "\x01"), "unsupported .npy version 1.1"},
      {"tiny", bytes_of("\x93NUMPY\x01"), "truncated: 7 bytes is too short"},
      {"hlen_past_end", edit(8, "\xff\xff"), "header length 65535 runs past the end of the file (176 bytes)"},
      {"hlen_huge", bytes_of(v2_huge + std::string(64, ' ')), "header length 2147483648 is too large"},
      {"fortran", replace("False", "True "), "fortran_order is True: column-major arrays are not supported"},
      {"big_endian", replace("<f4", ">f4"), "big-endian dtype '>f4' is not supported at byte offset 20"},
      {"complex", replace("<f4", "<c8"), "unsupported dtype descr '<c8'"},
      {"payload_short", dropped, "truncated payload: shape [3, 4] of F32 needs 48 bytes after byte offset 128, the file has 47"},
      {"payload_long", extra, "1 trailing bytes after the payload, at byte offset 176"},
      {"no_shape", make_npy("{'descr': '<f4', " + d + "}", 0), "header lacks 'shape'"},
      {"no_descr", make_npy("{" + d + "'shape': (1,)}", 4), "header lacks 'descr'"},
      {"extra_key", make_npy("{'descr': '<f4', " + d + "'shape': (), 'x': 1, }", 4), "unexpected key 'x'"},
      {"dup_key", make_npy("{'descr': '<f4', 'descr': '<f4', " + d + "'shape': ()}", 4), "duplicate key 'descr'"},
      {"not_tuple", make_npy("{'descr': '<f4', " + d + "'shape': (3)}", 12), "a 1-d shape needs a trailing comma"},
      {"negative", make_npy("{'descr': '<f4', " + d + "'shape': (-1,)}", 0), "negative dimension"},
      {"open_tuple", make_npy("{'descr': '<f4', " + d + "'shape': (3, 4}", 0), "expected ',' or ')' in shape"},
      {"overflow", make_npy("{'descr': '<f4', " + d + "'shape': (4611686018427387904, 4)}", 0), "overflows"},
      {"huge_dim", make_npy("{'descr': '<f4', " + d + "'shape': (99999999999999999999,)}", 0), "dimension too large"},
      {"not_dict", make_npy("[1]", 0), "expected '{'"},
      {"after_dict", make_npy("{'descr': '<f4', " + d + "'shape': ()} x", 4), "unexpected characters after the header dict"},
      {"order_int", make_npy("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", 4), "fortran_order must be True or False"},
      {"unquoted", make_npy("{'descr': f4, " + d + "'shape': ()}", 4), "expected a quoted string"},
      {"structured", make_npy("{'descr': [('a', '<f4')], " + d + "'shape': ()}", 4), "expected a quoted string"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto path = dir.path / (c.name + ".npy");
    write_file_atomic(path, c.bytes);
    auto msg = error_of([&] { load_npy(path); });
    CAPTURE(msg);
    CHECK(contains(msg, c.phrase));
    CHECK(contains(msg, c.name + ".npy: "));
    auto mem = error_of([&] { parse_npy(c.bytes, "mem.npy"); });
    CHECK(contains(mem, c.phrase));
    CHECK(contains(mem, "mem.npy: "));
  }
  CHECK(contains(error_of([&] { load_npy(dir.path / "absent.npy"); }), "absent.npy: file not found"));
}

TEST_CASE("npy reader accepts what NumPy accepts for single-byte types and key order") {
  auto t = parse_npy(make_npy("{'shape': (2,), 'fortran_order': False, 'descr': '<u1'}", 2));
  CHECK(t.dtype == DType::U8);
  CHECK(t.shape == std::vector<std::int64_t>{2});
  t = parse_npy(make_npy("{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": (1, 2,)}", 2));
  CHECK(t.dtype == DType::BOOL);
  CHECK(t.shape == std::vector<std::int64_t>{1, 2});
}

}  // namespace test_npy
