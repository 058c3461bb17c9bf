// Human output for batonctl: aligned tables and state colours (only on a terminal, and
// never with NO_COLOR).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace baton::ctl {

void SetColor(bool enabled);
// Colours a state name by what it means: green serving, yellow in transition, red failed.
std::string State(const std::string& state);
std::string Bold(const std::string& text);
std::string Dim(const std::string& text);

// Prints rows under headers with columns aligned (ANSI colour codes do not count).
void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);

// A JSON field as text: strings bare, null or missing as `fallback`, others dumped.
std::string Str(const nlohmann::json& j, const char* key, const std::string& fallback = "-");
// "42s", "5m", "3h" since a Unix time; "-" for 0.
std::string Age(double since);
std::string Seconds(double s);  // "0.012s", "1.25s"

void PrintStatus(const nlohmann::json& status);
void PrintService(const nlohmann::json& service);
void PrintHistory(const nlohmann::json& history);
void PrintEvent(const nlohmann::json& event, double started);
void PrintLogLine(const nlohmann::json& line);

}  // namespace baton::ctl
