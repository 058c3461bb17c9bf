// Parsing a config from text in the unit tests, as if read from baton.toml.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "supervisor/config/config.h"

namespace baton {

inline Result<Config> Parse(const std::string& text) { return ParseConfig(text, "baton.toml"); }

// The error a config that must be refused gets.
inline std::string ErrorOf(const std::string& text) {
  auto c = Parse(text);
  REQUIRE_FALSE(c.ok());
  return c.status().message();
}

}  // namespace baton
