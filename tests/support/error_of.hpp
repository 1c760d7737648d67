// tests/support/error_of.hpp: the message of the dml::Error a call throws, and a substring
// test, for tests that check what an error says.
#pragma once

#include <string>

#include <dml/config.hpp>

namespace dml::testing {

// fn()'s dml::Error message, or "no dml::Error" when it returns normally.
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const dml::Error& e) {
    return e.what();
  }
  return "no dml::Error";
}

// Whether `part` occurs in `s`.
inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace dml::testing
