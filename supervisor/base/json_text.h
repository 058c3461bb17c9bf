// JSON to text for everything batond writes out (API answers, streams, history, state).
// Strings may hold bytes from outside (a worker's output or STATUS=, a request path) that
// are not UTF-8; nlohmann's default dump() throws on those. Here they become U+FFFD.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace baton {

inline std::string JsonText(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace baton
