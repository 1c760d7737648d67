#include <dml/io/json.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "../support/error_of.hpp"

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_json {

namespace json = dml::io::json;

namespace {

// Returns the ParseError for text; fails the test when parse succeeds.
json::ParseError parse_error(const std::string& text, const json::ParseOptions& options = {}) {
  try {
    json::parse(text, options);
  } catch (const json::ParseError& e) {
    return e;
  }
  FAIL("parse accepted: ", text);
  return json::ParseError("unreachable", 0);
}

using dml::testing::contains;

}  // namespace

TEST_CASE("json parses scalars with their kinds") {
  CHECK(json::parse("null").is_null());
  CHECK(json::parse(" true ").as_bool() == true);
  CHECK(json::parse("false").as_bool() == false);
  CHECK(json::parse("0").as_int() == 0);
  CHECK(json::parse("-0").as_int() == 0);
  CHECK(json::parse("-9223372036854775808").as_int() == std::numeric_limits<std::int64_t>::min());
  CHECK(json::parse("9223372036854775807").as_int() == std::numeric_limits<std::int64_t>::max());
  // Past int64 an integer becomes a double.
  auto big = json::parse("9223372036854775808");
  CHECK(big.kind() == json::Kind::Double);
  CHECK(big.as_double() == 9223372036854775808.0);
  CHECK(json::parse("1.5e3").kind() == json::Kind::Double);
  CHECK(json::parse("1.5e3").as_double() == 1500.0);
  CHECK(json::parse("-0.25").as_double() == -0.25);
  CHECK(json::parse("2E-2").as_double() == 0.02);
  CHECK(json::parse("7").as_double() == 7.0);  // ints read as doubles too
  CHECK(json::parse("\"hi\"").as_string() == "hi");
}

TEST_CASE("json decodes every escape and surrogate pairs to UTF-8") {
  auto v = json::parse(R"("q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20ac\ud83d\ude00 \u0000.")");
  std::string want = "q\" b\\ s/ \b\f\n\r\t A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 ";
  want += '\0';
  want += '.';
  CHECK(v.as_string() == want);
  // Raw UTF-8 passes through unchanged.
  CHECK(json::parse("\"\xE2\x82\xAC \xF0\x9F\x98\x80\"").as_string() == "\xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST_CASE("json keeps nesting and member order") {
  auto v = json::parse(R"({"z": [1, {"b": null, "a": [true, []]}], "a": {}, "m": "x"})");
  const auto& o = v.as_object();
  REQUIRE(o.size() == 3);
  CHECK(o[0].first == "z");
  CHECK(o[1].first == "a");
  CHECK(o[2].first == "m");
  const auto& z = v.at("z").as_array();
  REQUIRE(z.size() == 2);
  CHECK(z[0].as_int() == 1);
  CHECK(z[1].at("b").is_null());
  CHECK(z[1].at("a").as_array()[0].as_bool());
  CHECK(z[1].at("a").as_array()[1].as_array().empty());
  CHECK(v.find("missing") == nullptr);
  CHECK_THROWS_AS(v.at("missing"), dml::Error);
  CHECK(v.at("m").as_string() == "x");
}

TEST_CASE("json dump is compact by default and pretty with an indent") {
  json::Value v;
  v.set("name", "w");
  v.set("shape", json::Array{2, 3});
  v.set("ok", true);
  v.set("none", nullptr);
  v.set("empty", json::Object{});
  v.set("shape", json::Array{4});  // replaces in place
  CHECK(json::dump(v) == R"({"name":"w","shape":[4],"ok":true,"none":null,"empty":{}})");
  CHECK(json::dump(v, 2) ==
        "{\n  \"name\": \"w\",\n  \"shape\": [\n    4\n  ],\n  \"ok\": true,\n  \"none\": null,\n"
        "  \"empty\": {}\n}");
}

TEST_CASE("json round trips text and values") {
  const std::string canonical =
      R"({"a":[1,-2,3.5,1e+300,"\"\\\n\u001f",true,false,null],"b":{"c":{}},"é":-0.001})";
  CHECK(json::dump(json::parse(canonical)) == canonical);

  json::Value v = json::Array{0.1, 1.0 / 3.0, 5e-324, -1e308, 100.0, std::int64_t{-7},
                              std::string("tab\tbell\x07 del\x7f \xE2\x82\xAC")};
  auto back = json::parse(json::dump(v));
  CHECK(back == v);
  CHECK(back.as_array()[4].kind() == json::Kind::Double);  // 100.0 written as "100.0"
  CHECK(json::dump(json::Value(100.0)) == "100.0");
  CHECK(json::dump(json::Value("\x01")) == R"("\u0001")");
  CHECK(json::dump(json::Value("\x7f")) == "\"\x7f\"");
  auto pretty = json::parse(json::dump(json::parse(canonical), 3));
  CHECK(pretty == json::parse(canonical));
}

TEST_CASE("json rejects malformed input and names the byte offset") {
  struct Case {
    std::string text, phrase;
    std::size_t offset;
  };
  const Case cases[] = {
      {"", "unexpected end of input", 0},
      {"[1,]", "unexpected character ']'", 3},
      {"{\"a\":1,}", "expected a string key", 7},
      {"[1 2]", "expected ',' or ']'", 3},
      {"{\"a\" 1}", "expected ':'", 5},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}'", 7},
      {"01", "leading zero", 0},
      {"1.", "expected a digit after '.'", 2},
      {"1e+", "expected a digit in exponent", 3},
      {"-", "invalid number", 1},
      {"+1", "unexpected character '+'", 0},
      {".5", "unexpected character '.'", 0},
      {"\"abc", "unterminated string", 4},
      {"\"a\x01\"", "unescaped control character", 2},
      {"\"\\x\"", "invalid escape", 1},
      {"\"\\u12G4\"", "invalid hex digit", 5},
      {"\"\\ud800\"", "high surrogate", 1},
      {"\"\\ud800\\u0041\"", "high surrogate", 1},
      {"\"\\udc00\"", "lone low surrogate", 1},
      {"\"\xff\"", "invalid UTF-8", 1},
      {"\"\xC0\x80\"", "invalid UTF-8", 1},      // overlong NUL
      {"\"\xED\xA0\x80\"", "invalid UTF-8", 1},  // UTF-16 surrogate as UTF-8
      {"\"\xE2\x82\"", "invalid UTF-8", 1},      // truncated sequence
      {"{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\"", 13},
      {"[1] x", "trailing characters", 4},
      {"tru", "invalid literal", 0},
      {"nul", "invalid literal", 0},
      {"NaN", "unexpected character 'N'", 0},
      {"[Infinity]", "unexpected character 'I'", 1},
      {"1e999", "number out of range", 0},
      {"// c\n1", "unexpected character '/'", 0},
      {"\xEF\xBB\xBF{}", "unexpected character", 0},
      {"[1,\n  {\"k\": tru}]", "invalid literal", 12},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto e = parse_error(c.text);
    CHECK(contains(e.reason(), c.phrase));
    CHECK(e.offset() == c.offset);
    CHECK(contains(e.what(), "at byte " + std::to_string(c.offset)));
    CHECK(contains(e.what(), "json: "));
  }
}

TEST_CASE("json parse errors are dml::Error") {
  CHECK_THROWS_AS(json::parse("[1,]"), dml::Error);
  CHECK_THROWS_WITH_AS(json::parse("{"), doctest::Contains("at byte 1"), dml::Error);
}

TEST_CASE("json enforces the depth limit") {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK_NOTHROW(json::parse(nested(json::kDefaultMaxDepth)));
  auto e = parse_error(nested(json::kDefaultMaxDepth + 1));
  CHECK(contains(e.reason(), "nesting deeper than the limit of 128"));
  CHECK(e.offset() == static_cast<std::size_t>(json::kDefaultMaxDepth));
  // Far past the limit fails cleanly rather than exhausting the stack.
  CHECK(parse_error(std::string(1'000'000, '[')).offset() == 128);

  json::ParseOptions shallow{.max_depth = 2};
  CHECK_NOTHROW(json::parse("[[1], {\"a\": 2}]", shallow));
  CHECK(parse_error("[[[1]]]", shallow).offset() == 2);
  CHECK(parse_error(R"({"a": {"b": []}})", shallow).offset() == 12);
}

TEST_CASE("json accessors and the writer reject the wrong input") {
  auto v = json::parse(R"({"s": "x", "n": 1.5})");
  CHECK_THROWS_WITH_AS(v.at("s").as_int(), doctest::Contains("expected an integer, got a string"),
                       dml::Error);
  CHECK_THROWS_WITH_AS(v.at("n").as_int(), doctest::Contains("got a double"), dml::Error);
  CHECK_THROWS_AS(v.as_array(), dml::Error);
  CHECK_THROWS_AS(json::parse("[]").find("a"), dml::Error);
  CHECK_THROWS_WITH_AS(json::dump(json::Value(std::nan(""))), doctest::Contains("non-finite"), dml::Error);
  CHECK_THROWS_WITH_AS(json::dump(json::Value(INFINITY)), doctest::Contains("non-finite"), dml::Error);
  CHECK_THROWS_WITH_AS(json::dump(json::Value("ok \xff")), doctest::Contains("invalid UTF-8"), dml::Error);
  CHECK_THROWS_AS(json::Value(std::numeric_limits<std::uint64_t>::max()), dml::Error);
  CHECK(json::Value(std::uint64_t{42}).as_int() == 42);
}

}  // namespace test_json
