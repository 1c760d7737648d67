#include <dml/io/json.hpp>
#include <dml/io/npy.hpp>
#include <dml/io/safetensors.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../support/error_of.hpp"
#include "../support/temp_dir.hpp"

#ifndef DML_TEST_DATA_DIR
#error "DML_TEST_DATA_DIR must name tests/fixtures"
#endif

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_safetensors {

namespace fs = std::filesystem;
using namespace dml::io;

namespace {

using dml::testing::TempDir;

fs::path fixture(const char* name) { return fs::path(DML_TEST_DATA_DIR) / "io" / name; }

void append(std::vector<std::byte>& out, const void* p, std::size_t n) {
  auto b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}

std::vector<std::byte> le64(std::uint64_t n) {
  std::vector<std::byte> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(n >> (8 * i)));
  return out;
}

// A safetensors file: length prefix (header.size() unless given), header, and
// data_size data bytes.
std::vector<std::byte> st_file(const std::string& header, std::size_t data_size,
                               std::optional<std::uint64_t> declared = std::nullopt) {
  auto out = le64(declared.value_or(header.size()));
  append(out, header.data(), header.size());
  for (std::size_t i = 0; i < data_size; ++i) out.push_back(static_cast<std::byte>(i % 251));
  return out;
}

fs::path write(const TempDir& dir, const std::string& name, const std::vector<std::byte>& bytes) {
  auto p = dir.path / name;
  write_file_atomic(p, bytes);
  return p;
}

using dml::testing::contains;
using dml::testing::error_of;

template <class T>
std::vector<std::byte> raw_bytes(const std::vector<T>& v) {
  std::vector<std::byte> out;
  append(out, v.data(), v.size() * sizeof(T));
  return out;
}

RawTensor raw(DType dtype, std::vector<std::int64_t> shape, std::vector<std::uint8_t> bytes) {
  RawTensor t{dtype, std::move(shape), {}};
  append(t.bytes, bytes.data(), bytes.size());
  return t;
}

}  // namespace

TEST_CASE("serialize_safetensors reproduces the reference writer's test vectors") {
  // Expected bytes from huggingface/safetensors tensor.rs unit tests
  // (test_serialization, test_serialization_forced_alignement, test_empty).
  std::vector<float> v{0, 1, 2, 3, 4, 5};
  auto want = le64(64);
  std::string h = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  append(want, h.data(), h.size());
  append(want, v.data(), 24);
  CHECK(serialize_safetensors({{"attn.0", RawTensor::from(v, {1, 2, 3})}}) == want);

  want = le64(72);
  h = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + std::string(7, ' ');
  append(want, h.data(), h.size());
  append(want, v.data(), 24);
  auto bytes = serialize_safetensors({{"attn0", RawTensor::from(v, {1, 1, 2, 3})}});
  CHECK(bytes == want);
  CHECK(parse_safetensors(bytes).tensors.at("attn0").as<float>() == v);

  want = le64(8);
  append(want, "{}      ", 8);
  CHECK(serialize_safetensors({}) == want);
  CHECK(parse_safetensors(want).tensors.empty());

  want = le64(40);
  h = R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' ');
  append(want, h.data(), h.size());
  CHECK(serialize_safetensors({}, {{"framework", "pt"}}) == want);
  CHECK(parse_safetensors(want).metadata == StringMap{{"framework", "pt"}});
}

TEST_CASE("safetensors round trips dtypes, 0-d and zero-size shapes, and metadata") {
  TempDir dir;
  TensorMap tensors{
      {"a.f32", RawTensor::from(std::vector<float>{1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f}, {2, 3})},
      {"z.f64", RawTensor::from(std::vector<double>{2.5}, {})},
      {"m.f64", RawTensor::from(std::vector<double>{-1e300, 5e-324}, {2})},
      {"i64", RawTensor::from(std::vector<std::int64_t>{}, {0})},
      {"i64.big", RawTensor::from(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 9}, {1, 2})},
      {"u8", RawTensor::from(std::vector<std::uint8_t>{}, {3, 0, 2})},
      {"i32", RawTensor::from(std::vector<std::int32_t>{7, -8, 9}, {3, 1})},
      {"u64", RawTensor::from(std::vector<std::uint64_t>{~std::uint64_t{0}}, {1})},
      {"bf16", raw(DType::BF16, {2}, {0x80, 0x3F, 0x00, 0xBF})},
      {"f16", raw(DType::F16, {1, 1}, {0x00, 0x3C})},
      {"bool", raw(DType::BOOL, {4}, {1, 0, 0, 1})},
      {"f8", raw(DType::F8_E4M3, {2}, {0x38, 0xB8})},
  };
  StringMap metadata{{"format", "pt"}, {"note", "quote \" backslash \\ newline \n tab \t euro \xE2\x82\xAC"},
                     {"empty", ""}};
  auto path = dir.path / "round.safetensors";
  save_safetensors(path, tensors, metadata);
  auto back = read_safetensors(path);
  CHECK(back.tensors == tensors);
  CHECK(back.metadata == metadata);
  CHECK(load_safetensors(path) == tensors);
  CHECK(read_file(path) == serialize_safetensors(tensors, metadata));

  // Header padded to 8; data ordered by descending dtype alignment, then name.
  auto bytes = read_file(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  auto header = json::parse(std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, n));
  std::vector<std::pair<std::int64_t, std::string>> by_offset;
  for (const auto& [name, info] : header.as_object())
    if (name != "__metadata__") by_offset.emplace_back(info.at("data_offsets").as_array()[0].as_int(), name);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> order;
  for (const auto& [offset, name] : by_offset) order.push_back(name);
  CHECK(order == std::vector<std::string>{"u64", "i64", "i64.big", "m.f64", "z.f64", "a.f32", "i32", "bf16",
                                          "f16", "f8", "u8", "bool"});
  CHECK(header.as_object()[0].first == "__metadata__");
  // Only the target remains: the temporary was renamed away.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("a file written by PyTorch loads with the exact values") {
  auto file = read_safetensors(fixture("torch_values.safetensors"));
  CHECK(file.metadata == StringMap{{"format", "pt"}, {"source", "gen_io.py"}});
  const auto& t = file.tensors;
  REQUIRE(t.size() == 12);

  std::vector<float> f32;
  for (int i = 0; i < 12; ++i) f32.push_back(static_cast<float>((i - 5) / 3.0));
  CHECK(t.at("f32").shape == std::vector<std::int64_t>{3, 4});
  CHECK(t.at("f32").as<float>() == f32);
  std::vector<double> f64;
  for (int i = 0; i < 6; ++i) f64.push_back((i - 2) / 7.0);
  CHECK(t.at("f64").shape == std::vector<std::int64_t>{2, 3});
  CHECK(t.at("f64").as<double>() == f64);
  const std::int64_t p62 = std::int64_t{1} << 62;
  CHECK(t.at("i64").as<std::int64_t>() == std::vector<std::int64_t>{-p62, -1, 0, 1, p62 + 7});
  CHECK(t.at("i32").shape == std::vector<std::int64_t>{2, 2});
  CHECK(t.at("i32").as<std::int32_t>() == std::vector<std::int32_t>{-7, 0, 7, 2147483647});
  CHECK(t.at("i16").as<std::int16_t>() == std::vector<std::int16_t>{-32768, 32767});
  CHECK(t.at("i8").as<std::int8_t>() == std::vector<std::int8_t>{-128, 127});
  CHECK(t.at("u8").as<std::uint8_t>() == std::vector<std::uint8_t>{0, 1, 127, 255});
  CHECK(t.at("f16") == raw(DType::F16, {3}, {0x00, 0x38, 0x00, 0xC0, 0xFF, 0x7B}));  // 0.5, -2, 65504
  CHECK(t.at("bf16") == raw(DType::BF16, {2}, {0x80, 0x3F, 0x00, 0xBF}));           // 1, -0.5
  CHECK(t.at("flags") == raw(DType::BOOL, {3}, {1, 0, 1}));
  CHECK(t.at("scalar").shape.empty());
  CHECK(t.at("scalar").as<double>() == std::vector<double>{2.5});
  CHECK(t.at("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(t.at("empty").bytes.empty());
  // Our writer reproduces the file byte for byte.
  CHECK(serialize_safetensors(file.tensors, file.metadata) == read_file(fixture("torch_values.safetensors")));
}

TEST_CASE("a PyTorch state_dict with torchvision names loads and matches NumPy's copy") {
  auto file = read_safetensors(fixture("torch_module.safetensors"));
  CHECK(file.metadata == StringMap{{"format", "pt"}});
  std::vector<std::string> names;
  for (const auto& [name, t] : file.tensors) names.push_back(name);
  CHECK(names == std::vector<std::string>{"bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean",
                                          "bn1.running_var", "bn1.weight", "conv1.weight", "fc.bias",
                                          "fc.weight"});
  const auto& t = file.tensors;
  CHECK(t.at("conv1.weight").shape == std::vector<std::int64_t>{2, 1, 3, 3});
  CHECK(t.at("bn1.num_batches_tracked").dtype == DType::I64);
  CHECK(t.at("bn1.num_batches_tracked").shape.empty());
  CHECK(t.at("bn1.num_batches_tracked").as<std::int64_t>() == std::vector<std::int64_t>{1});
  CHECK(t.at("bn1.weight").as<float>() == std::vector<float>{1.f, 1.f});
  auto fc = load_npy(fixture("torch_module_fc_weight.npy"));
  CHECK(t.at("fc.weight") == fc);
  CHECK(t.at("fc.weight").shape == std::vector<std::int64_t>{3, 8});
  CHECK(t.at("bn1.running_var") == load_npy(fixture("torch_module_bn1_running_var.npy")));
  CHECK(t.at("bn1.running_var").as<float>() != std::vector<float>{1.f, 1.f});  // stats were updated
}

TEST_CASE("safetensors reader accepts any header order, null metadata and extra entry keys") {
  std::string h = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"__metadata__":null,)"
                  R"("a":{"data_offsets":[0,2],"shape":[2],"dtype":"U8","extra":[1]}})";
  auto file = parse_safetensors(st_file(h, 4));
  CHECK(file.metadata.empty());
  CHECK(file.tensors.at("a").as<std::uint8_t>() == std::vector<std::uint8_t>{0, 1});
  CHECK(file.tensors.at("b").as<std::uint8_t>() == std::vector<std::uint8_t>{2, 3});
  // Zero-size tensors may share an offset.
  h = R"({"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("e2":{"dtype":"F64","shape":[2,0],"data_offsets":[1,1]}})";
  CHECK(parse_safetensors(st_file(h, 1)).tensors.size() == 3);
}

TEST_CASE("malformed safetensors files throw dml::Error naming the file and the problem") {
  TempDir dir;
  auto entry = [](const char* name, const char* dtype, const char* shape, const char* offsets) {
    return std::string("\"") + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
  };
  auto one = [&](const char* dtype, const char* shape, const char* offsets) {
    return "{" + entry("w", dtype, shape, offsets) + "}";
  };
  struct Case {
    std::string name, header;
    std::size_t data_size;
    std::string phrase;
  };
  const std::string two_gap = "{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," +
                              entry("b", "\"F32\"", "[1]", "[8,12]") + "}";
  const std::string two_overlap = "{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                                  entry("b", "\"F32\"", "[2]", "[4,12]") + "}";
  const std::string two_dup = "{" + entry("a", "\"U8\"", "[1]", "[0,1]") + "," +
                              entry("a", "\"U8\"", "[1]", "[1,2]") + "}";
  const Case cases[] = {
      {"gap", two_gap, 12, "gap in the data section: bytes [4, 8)"},
      {"start_gap", one("\"F32\"", "[1]", "[4,8]"), 8, "gap in the data section: bytes [0, 4)"},
      {"overlap", two_overlap, 12, "overlap tensor 'a'"},
      {"out_of_range", one("\"F32\"", "[2]", "[0,8]"), 4, "out of range: the data section is 4 bytes"},
      {"trailing", one("\"F32\"", "[1]", "[0,4]"), 6, "2 trailing bytes after the last tensor"},
      {"no_tensors_trailing", "{}", 3, "3 trailing bytes"},
      {"reversed", one("\"F32\"", "[1]", "[8,4]"), 8, "end before they begin"},
      {"duplicate", two_dup, 2, "duplicate key \"a\""},
      {"bad_dtype", one("\"F128\"", "[1]", "[0,16]"), 16, "unknown dtype 'F128'"},
      {"dtype_number", one("4", "[1]", "[0,4]"), 4, "dtype is not a string"},
      {"size_mismatch", one("\"F32\"", "[2]", "[0,4]"), 4, "needs 8 bytes but data_offsets [0, 4] span 4"},
      {"negative_dim", one("\"F32\"", "[-1]", "[0,4]"), 4, "shape must hold non-negative integers"},
      {"float_dim", one("\"F32\"", "[2.0]", "[0,8]"), 8, "shape must hold non-negative integers"},
      {"huge_dim", one("\"U8\"", "[18446744073709551616]", "[0,1]"), 1, "shape must hold non-negative"},
      {"overflow", one("\"F32\"", "[4611686018427387904,4]", "[0,0]"), 0, "overflows"},
      {"bytes_overflow", one("\"F64\"", "[2305843009213693952]", "[0,0]"), 0, "overflows"},
      {"negative_offset", one("\"U8\"", "[1]", "[-1,0]"), 1, "data_offsets must hold non-negative"},
      {"three_offsets", one("\"U8\"", "[1]", "[0,1,2]"), 1, "data_offsets must be an array [begin, end]"},
      {"shape_string", one("\"U8\"", "\"1\"", "[0,1]"), 1, "shape is not an array"},
      {"missing_offsets", R"({"w":{"dtype":"U8","shape":[1]}})", 1, "entry needs \"dtype\""},
      {"entry_not_object", R"({"w":[1,2]})", 0, "entry is not an object"},
      {"metadata_int", R"({"__metadata__":{"ok":"x","n":1}})", 0, "must map strings to strings, but key 'n'"},
      {"metadata_array", R"({"__metadata__":["a"]})", 0, "__metadata__ must be an object"},
      {"bad_json", "{\"a\":", 0, "invalid JSON header: unexpected end of input, expected a value at byte offset 13"},
      {"not_object", "[]", 0, "the header is not a JSON object"},
      {"bad_utf8", "{\"\xff\":1}", 0, "invalid UTF-8 in string at byte offset 10"},
      {"header_garbage", "{}  x", 0, "trailing characters after the JSON value at byte offset 12"},
      {"nul_padding", std::string("{}\0\0\0\0\0\0", 8), 0, "invalid JSON header"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto path = write(dir, c.name + ".safetensors", st_file(c.header, c.data_size));
    auto msg = error_of([&] { load_safetensors(path); });
    CAPTURE(msg);
    CHECK(contains(msg, c.phrase));
    CHECK(contains(msg, c.name + ".safetensors: "));
    // The same bytes from memory give the same verdict under the given name.
    auto mem = error_of([&] { parse_safetensors(st_file(c.header, c.data_size), "mem.st"); });
    CHECK(contains(mem, c.phrase));
    CHECK(contains(mem, "mem.st: "));
  }
}

TEST_CASE("safetensors data-section errors name the file byte offset") {
  // Header of 16 bytes: the data section starts at file byte 24.
  std::string h = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  h.resize((h.size() + 7) / 8 * 8, ' ');
  const std::uint64_t data_start = 8 + h.size();
  auto msg = error_of([&] { parse_safetensors(st_file(h, 3)); });
  CHECK(contains(msg, "2 trailing bytes after the last tensor, at file byte offset " + std::to_string(data_start + 1)));
  std::string g = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})";
  msg = error_of([&] { parse_safetensors(st_file(g, 3)); });
  CHECK(contains(msg, "(file byte offset " + std::to_string(8 + g.size()) + ")"));
}

TEST_CASE("safetensors length prefix errors and missing files") {
  TempDir dir;
  auto tiny = std::vector<std::byte>{std::byte{1}, std::byte{0}, std::byte{0}};
  auto p = write(dir, "tiny.safetensors", tiny);
  CHECK(contains(error_of([&] { load_safetensors(p); }),
                 "tiny.safetensors: truncated: the file is 3 bytes, too short for the 8-byte header length"));
  p = write(dir, "zero.safetensors", {});
  CHECK(contains(error_of([&] { load_safetensors(p); }), "zero.safetensors: truncated: the file is 0 bytes"));
  p = write(dir, "huge.safetensors", st_file("{}", 0, kMaxSafetensorsHeader + 1));
  CHECK(contains(error_of([&] { load_safetensors(p); }),
                 "huge.safetensors: header length 100000001 is too large (limit 100000000 bytes)"));
  p = write(dir, "max.safetensors", st_file("{}", 0, ~std::uint64_t{0}));
  CHECK(contains(error_of([&] { load_safetensors(p); }), "max.safetensors: header length 18446744073709551615 is too large"));
  p = write(dir, "past.safetensors", st_file("{}      ", 0, 64));
  CHECK(contains(error_of([&] { load_safetensors(p); }),
                 "past.safetensors: header length 64 runs past the end of the file (16 bytes)"));
  CHECK(contains(error_of([&] { load_safetensors(dir.path / "absent.safetensors"); }),
                 "absent.safetensors: file not found"));
  CHECK(contains(error_of([&] { load_safetensors(dir.path); }), "is a directory"));
}

TEST_CASE("save_safetensors rejects bad tensors and leaves no partial file") {
  TempDir dir;
  auto path = dir.path / "bad.safetensors";
  RawTensor wrong{DType::F32, {3}, std::vector<std::byte>(8)};
  CHECK(contains(error_of([&] { save_safetensors(path, {{"w", wrong}}); }),
                 "bad.safetensors: safetensors: tensor 'w': tensor of dtype F32 and shape [3] needs 12 bytes but holds 8"));
  auto ok = RawTensor::from(std::vector<float>{1.f}, {1});
  CHECK(contains(error_of([&] { save_safetensors(path, {{"__metadata__", ok}}); }),
                 "'__metadata__' cannot name a tensor"));
  RawTensor negative{DType::U8, {-1}, {}};
  CHECK(contains(error_of([&] { save_safetensors(path, {{"n", negative}}); }), "negative dimension"));
  CHECK(contains(error_of([&] { save_safetensors(path, {{"bad\xff", ok}}); }), "invalid UTF-8"));
  CHECK(contains(error_of([&] { save_safetensors(dir.path / "no" / "x.safetensors", {{"w", ok}}); }),
                 "x.safetensors: cannot create"));
  CHECK(fs::is_empty(dir.path));
  // Overwriting an existing file replaces it whole.
  save_safetensors(path, {{"w", ok}, {"v", ok}});
  save_safetensors(path, {{"w", ok}});
  CHECK(load_safetensors(path).size() == 1);
}

}  // namespace test_safetensors
