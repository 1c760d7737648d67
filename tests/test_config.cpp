// Tests for dml/config.hpp: dml::Error keeps the user's message free of the
// library's source location and hands that location out separately.
#include <doctest/doctest.h>

#include <dml/config.hpp>
#include <dml/io/json.hpp>
#include <string>

TEST_CASE("an Error's what() is the message alone; where() holds the location") {
  int line = 0;
  try {
    line = __LINE__ + 1;
    DML_CHECK(1 + 1 == 3, "arithmetic: expected ", 3, ", found ", 1 + 1);
    FAIL("DML_CHECK did not throw");
  } catch (const dml::Error& e) {
    CHECK(std::string(e.what()) == "arithmetic: expected 3, found 2");
    CHECK(e.message() == e.what());
    CHECK(e.where() == std::string(e.file()) + ":" + std::to_string(line));
    CHECK(e.where().find("test_config.cpp:" + std::to_string(line)) != std::string::npos);
    CHECK(e.line() == static_cast<std::uint_least32_t>(line));
  }
}

TEST_CASE("an Error raised in a library header has where() from dml/ on, and no location in what()") {
  try {
    (void)dml::io::json::parse("[1,");
    FAIL("json::parse accepted a truncated array");
  } catch (const dml::Error& e) {
    CHECK(e.where().rfind("dml/io/json.hpp:", 0) == 0);
    CHECK(std::string(e.what()).find("[at ") == std::string::npos);
    CHECK(std::string(e.what()).find("json.hpp") == std::string::npos);
  }
}
