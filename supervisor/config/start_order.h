// Start order: a service with `after = ["db", ...]` starts once every service it names is
// live, and, when batond stops, drains only after every service that names it has
// stopped. Pure; the Supervisor acts on it.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "supervisor/config/config.h"

namespace baton {

// A cycle of `after`, as the names along it with the first repeated at the end ("a", "b",
// "a"); none when the services can be ordered. Names that are no service are ignored here.
std::optional<std::vector<std::string>> FindStartCycle(const std::vector<ServiceConfig>& services);

// Services not in `started` whose `after` are all in `live`, in config order.
std::vector<std::string> StartableNow(const std::vector<ServiceConfig>& services, const std::set<std::string>& started,
                                      const std::set<std::string>& live);

// The services that name `name` in their `after`: they stop before it.
std::vector<std::string> StopsBefore(const std::vector<ServiceConfig>& services, const std::string& name);

}  // namespace baton
