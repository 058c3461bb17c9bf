#include "supervisor/handover/release.h"

namespace baton {

nlohmann::json ReleaseToJson(const Release& r) {
  nlohmann::json j = {{"version", r.version}, {"created_at", r.created_at}};
  if (r.command) j["command"] = *r.command;
  if (!r.env.empty()) j["env"] = r.env;
  return j;
}

std::optional<Release> ReleaseFromJson(const nlohmann::json& j) {
  try {
    Release r;
    r.version = j.at("version").get<std::string>();
    r.created_at = j.value("created_at", 0.0);
    if (j.contains("command") && j["command"].is_array()) r.command = j["command"].get<std::vector<std::string>>();
    if (j.contains("env") && j["env"].is_object()) r.env = j["env"].get<std::map<std::string, std::string>>();
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace baton
