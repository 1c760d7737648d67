// Fuzzes io::json::parse: bad text is a json::ParseError; accepted text dumps
// to JSON that parses back to the same value and dumps identically.
#include <dml/io/json.hpp>

#include "fuzz.hpp"

namespace json = dml::io::json;

static void make_seeds(const std::filesystem::path& dir) {
  json::Object o;
  o.emplace_back("seed", "12345678901234567890");
  o.emplace_back("epoch", 3);
  o.emplace_back("lr", 1e-3);
  o.emplace_back("moms", json::Array{0.95, 0.85, 0.95});
  o.emplace_back("active", true);
  o.emplace_back("max_lr", nullptr);
  o.emplace_back("name", "caf\xc3\xa9 \"quoted\" \\ \t");
  dml_fuzz::write_seed(dir, "object.json", json::dump(o));
  dml_fuzz::write_seed(dir, "indented.json", json::dump(o, 2));
  dml_fuzz::write_seed(dir, "numbers.json", "[0, -0, 1e308, -1.5e-300, 9223372036854775807, -9223372036854775808, 1E+2]");
  dml_fuzz::write_seed(dir, "escapes.json", R"(["\u00e9\ud83d\ude00\n\/\b\f\r", {"": {}}, [[[]]]])");
  dml_fuzz::write_seed(dir, "header.json",
                       R"({"__metadata__":{"dml.format":"dml-checkpoint-1"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})");
}
DML_FUZZ_SEEDS(make_seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  json::Value v;
  try {
    v = json::parse(text, {.max_depth = 64});
  } catch (const json::ParseError&) {
    return 0;
  } catch (const dml::Error&) {
    dml_fuzz::fail("json::parse threw a dml::Error that is not a json::ParseError");
  }
  const std::string once = json::dump(v);
  json::Value back;
  try {
    back = json::parse(once);
  } catch (const dml::Error& e) {
    std::fprintf(stderr, "fuzz: dump of an accepted value does not parse: %s\n", e.message().c_str());
    std::abort();
  }
  if (!(back == v)) dml_fuzz::fail("json: parse(dump(v)) != v");
  if (json::dump(back) != once) dml_fuzz::fail("json: dump is not stable");
  (void)json::dump(v, 2);
  return 0;
}
