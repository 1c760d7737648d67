// Fuzzes io::parse_safetensors: bad bytes are a dml::Error naming the file;
// an accepted file serializes to bytes that parse back to the same tensors
// and metadata.
#include <dml/io/safetensors.hpp>

#include "fuzz.hpp"

namespace io = dml::io;

static void make_seeds(const std::filesystem::path& dir) {
  io::TensorMap t;
  t.emplace("conv1.weight", io::RawTensor::from(std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7}, {1, 2, 3}));
  t.emplace("bn1.num_batches_tracked", io::RawTensor::from(std::vector<std::int64_t>{42}, {}));
  t.emplace("fc.bias", io::RawTensor::from(std::vector<double>{0.25, -1}, {2}));
  t.emplace("half", io::RawTensor{io::DType::F16, {2}, std::vector<std::byte>(4, std::byte{0x3c})});
  t.emplace("empty", io::RawTensor::from(std::vector<std::uint8_t>{}, {0, 3}));
  dml_fuzz::write_seed(dir, "weights.safetensors", io::serialize_safetensors(t, {{"format", "pt"}}));
  dml_fuzz::write_seed(dir, "bare.safetensors", io::serialize_safetensors({}, {}));
  io::TensorMap one;
  one.emplace("x", io::RawTensor::from(std::vector<std::int32_t>{1, 2, 3, 4}, {2, 2}));
  dml_fuzz::write_seed(dir, "one.safetensors", io::serialize_safetensors(one));
}
DML_FUZZ_SEEDS(make_seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::string_view kName = "fuzz.safetensors";
  std::optional<io::SafetensorsFile> got = dml_fuzz::accepted(
      [](auto in, auto name) { return io::parse_safetensors(in, name); }, dml_fuzz::bytes(data, size), kName);
  if (!got) return 0;
  io::SafetensorsFile& f = *got;
  for (const auto& [name, t] : f.tensors) t.validate();
  if (f.tensors.contains("__metadata__")) return 0;  // accepted on read, refused on write
  std::vector<std::byte> again = io::serialize_safetensors(f.tensors, f.metadata);
  io::SafetensorsFile back = io::parse_safetensors(again, "again");
  if (back.tensors != f.tensors || back.metadata != f.metadata) dml_fuzz::fail("safetensors: round trip differs");
  return 0;
}
