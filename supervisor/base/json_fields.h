// Reading typed fields out of JSON from outside (API bodies, the state a self-upgrade
// carries): a field of the wrong type is an error naming it, never an exception or a
// silent default. Integers are range-checked by the type they are read into.
#pragma once

#include <nlohmann/json.hpp>

#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>

#include "supervisor/base/status.h"

namespace baton {

// Reads `j[key]` into `out` when present and not null; `out` keeps its value otherwise,
// or the read fails when `required`.
template <typename T>
Status ReadField(const nlohmann::json& j, const char* key, T& out, bool required = false) {
  auto wrong = [key](const char* what) {
    return Status::InvalidArgument(std::string("field '") + key + "' must be " + what);
  };
  if (!j.is_object() || !j.contains(key) || j[key].is_null())
    return required ? Status::InvalidArgument(std::string("field '") + key + "' is required") : Status::Ok();
  const nlohmann::json& v = j[key];
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return wrong("a string");
    out = v.get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return wrong("true or false");
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return wrong("an integer");
    constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<T>::max());
    constexpr auto kMin = static_cast<int64_t>(std::numeric_limits<T>::min());
    bool fits = false;
    if (v.is_number_unsigned()) {
      fits = v.get<uint64_t>() <= kMax;
    } else {
      int64_t n = v.get<int64_t>();
      fits = n >= kMin && (n < 0 || static_cast<uint64_t>(n) <= kMax);
    }
    if (!fits) return wrong("an integer in range");
    out = v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return wrong("a number");
    out = v.get<T>();
  } else {
    out = v;  // a sub-document its owner reads
  }
  return Status::Ok();
}

// Moves the sub-document `j[key]` into `out` (no copy of a large one), with ReadField's
// rules for a missing or null field.
inline Status TakeField(nlohmann::json& j, const char* key, nlohmann::json& out, bool required = false) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null())
    return required ? Status::InvalidArgument(std::string("field '") + key + "' is required") : Status::Ok();
  out = std::move(j[key]);
  return Status::Ok();
}

// Fails unless every field of the object `j` is one of `allowed`.
inline Status OnlyFields(const nlohmann::json& j, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (!known) return Status::InvalidArgument("unknown field '" + key + "'");
  }
  return Status::Ok();
}

// The first failure among reads made in order, or OK: `FirstError({ReadField(...), ...})`.
inline Status FirstError(std::initializer_list<Status> reads) {
  for (const Status& s : reads)
    if (!s.ok()) return s;
  return Status::Ok();
}

}  // namespace baton
