// A release: what to run, immutable once created. The command and env of the service's
// config apply unless the release overrides them.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace baton {

struct Release {
  std::string version;
  std::optional<std::vector<std::string>> command;  // overrides the config's command
  std::map<std::string, std::string> env;           // merged over the config's env
  double created_at = 0;                            // Unix seconds
  friend bool operator==(const Release&, const Release&) = default;
};

nlohmann::json ReleaseToJson(const Release& r);
// nullopt when `j` is not a release (no version).
std::optional<Release> ReleaseFromJson(const nlohmann::json& j);

}  // namespace baton
