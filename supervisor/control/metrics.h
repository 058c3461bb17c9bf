// Prometheus text exposition (format 0.0.4) of the daemon's status. Pure: it reads the
// same JSON that GET /v1/status returns.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace baton {

std::string RenderMetrics(const nlohmann::json& status);

}  // namespace baton
