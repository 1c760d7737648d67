// tests/fixture_file.hpp: reads the committed reference files of tests/fixtures
// that hold one array per line, "name count v0 v1 ..." ('#' lines are comments).
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace dml::testing {

using FixtureArrays = std::map<std::string, std::vector<double>>;

// The arrays of tests/fixtures/<relative>; a missing file or a malformed line fails the test.
inline FixtureArrays load_fixture_arrays(const std::string& relative) {
  std::ifstream in(std::string(DML_TEST_DATA_DIR) + "/" + relative);
  REQUIRE_MESSAGE(in.good(), "missing fixture tests/fixtures/", relative);
  FixtureArrays out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name;
    std::size_t n;
    ls >> name >> n;
    std::vector<double> v(n);
    for (auto& x : v) ls >> x;
    REQUIRE_MESSAGE(!ls.fail(), "malformed fixture line for ", name, " in ", relative);
    out[name] = v;
  }
  return out;
}

}  // namespace dml::testing
