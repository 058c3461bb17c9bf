// Human output for batonctl, as text: aligned tables and state colours (only on a
// terminal, and never with NO_COLOR). Pure but for the colour switch and the local time
// zone, so each view is unit-tested.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "supervisor/control/protocol.h"

namespace baton::ctl {

void SetColor(bool enabled);
// Colours a state name by what it means: green serving, yellow in transition, red failed.
std::string State(const std::string& state);
std::string Bold(const std::string& text);
std::string Dim(const std::string& text);

// Rows under headers with columns aligned (ANSI colour codes do not count), one per line.
std::string Table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);

// j[key] for a const object, or null when j is no object or lacks the key: a malformed
// answer shows as missing fields, where const operator[] would be undefined behaviour.
const nlohmann::json& Get(const nlohmann::json& j, const char* key);
// j[key] as a T, or `fallback` when it is missing or of another type.
template <typename T>
T Value(const nlohmann::json& j, const char* key, T fallback) {
  const nlohmann::json& v = Get(j, key);
  if (v.is_null()) return fallback;
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}
// A JSON field as text: strings bare, null or missing as `fallback`, others dumped.
std::string Str(const nlohmann::json& j, const char* key, const std::string& fallback = "-");
// "42s", "5m", "3h" from `since` to `now` (Unix times); "-" for 0.
std::string Age(double since, double now);
std::string Seconds(double s);  // "0.012s", "1.25s"

// The views; `now` is the Unix time ages are measured to.
std::string FormatStatus(const nlohmann::json& status, double now);
std::string FormatService(const nlohmann::json& service, double now);
std::string FormatHistory(const nlohmann::json& history);
// One line; times relative to `started` when it is set, else local wall time.
std::string FormatEvent(const ServiceEvent& event, double started);
std::string FormatLogLine(const nlohmann::json& line);
std::string FormatReload(const nlohmann::json& answer);
// The end of a handover: what was promoted, or why not and what still serves.
std::string FormatOutcome(const HandoverResult& result);

}  // namespace baton::ctl
