#include "supervisor/config/start_order.h"

#include <algorithm>
#include <map>

namespace baton {
namespace {

// Depth-first search: `path` is the chain from the root; a name met again on it closes a cycle.
bool Visit(const std::string& name, const std::map<std::string, const ServiceConfig*>& by_name,
           std::set<std::string>& done, std::vector<std::string>& path) {
  if (auto on_path = std::find(path.begin(), path.end(), name); on_path != path.end()) {
    path.erase(path.begin(), on_path);
    path.push_back(name);
    return true;
  }
  if (done.count(name) || !by_name.count(name)) return false;
  path.push_back(name);
  for (const auto& next : by_name.at(name)->after)
    if (Visit(next, by_name, done, path)) return true;
  path.pop_back();
  done.insert(name);
  return false;
}

}  // namespace

std::optional<std::vector<std::string>> FindStartCycle(const std::vector<ServiceConfig>& services) {
  std::map<std::string, const ServiceConfig*> by_name;
  for (const auto& s : services) by_name[s.name] = &s;
  std::set<std::string> done;
  for (const auto& s : services) {
    std::vector<std::string> path;
    if (Visit(s.name, by_name, done, path)) return path;
  }
  return std::nullopt;
}

std::vector<std::string> StartableNow(const std::vector<ServiceConfig>& services, const std::set<std::string>& started,
                                      const std::set<std::string>& live) {
  std::vector<std::string> out;
  for (const auto& s : services)
    if (!started.count(s.name) &&
        std::all_of(s.after.begin(), s.after.end(), [&](const std::string& dep) { return live.count(dep) > 0; }))
      out.push_back(s.name);
  return out;
}

std::vector<std::string> StopsBefore(const std::vector<ServiceConfig>& services, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& s : services)
    if (std::find(s.after.begin(), s.after.end(), name) != s.after.end()) out.push_back(s.name);
  return out;
}

}  // namespace baton
