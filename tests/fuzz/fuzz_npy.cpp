// Fuzzes io::parse_npy: bad bytes are a dml::Error naming the file; an
// accepted array serializes to bytes that parse back to the same array.
#include <dml/io/npy.hpp>

#include "fuzz.hpp"

namespace io = dml::io;

static void make_seeds(const std::filesystem::path& dir) {
  dml_fuzz::write_seed(dir, "f32.npy", io::serialize_npy(io::RawTensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})));
  dml_fuzz::write_seed(dir, "f64.npy", io::serialize_npy(io::RawTensor::from(std::vector<double>{0.5}, {})));
  dml_fuzz::write_seed(dir, "i64.npy", io::serialize_npy(io::RawTensor::from(std::vector<std::int64_t>{7, 8}, {2, 1})));
  dml_fuzz::write_seed(dir, "u8.npy", io::serialize_npy(io::RawTensor::from(std::vector<std::uint8_t>{}, {0})));
  // A NumPy-written header (version 1.0, Python dict spacing, fortran_order False).
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::string f = std::string("\x93NUMPY\x01\x00", 8);
  f += static_cast<char>(h.size() & 0xff);
  f += static_cast<char>(h.size() >> 8);
  f += h;
  f.append(12, '\0');
  dml_fuzz::write_seed(dir, "numpy.npy", f);
}
DML_FUZZ_SEEDS(make_seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::string_view kName = "fuzz.npy";
  const std::optional<io::NpyArray> got = dml_fuzz::accepted(
      [](auto in, auto name) { return io::parse_npy(in, name); }, dml_fuzz::bytes(data, size), kName);
  if (!got) return 0;
  const io::NpyArray& a = *got;
  a.validate();
  io::NpyArray back = io::parse_npy(io::serialize_npy(a), "again");
  if (!(back == a)) dml_fuzz::fail("npy: round trip differs");
  return 0;
}
