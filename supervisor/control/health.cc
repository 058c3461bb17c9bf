#include "supervisor/control/health.h"

namespace baton {

namespace {

HealthAnswer Error(int status, const std::string& message) { return {status, {{"error", message}}}; }

// Ready, or 503 with the reason: the first service without a live generation.
HealthAnswer Readiness(const HealthView& view, const std::vector<const ServiceHealth*>& services) {
  if (view.stopping) return {503, {{"ready", false}, {"reason", "batond is stopping"}}};
  nlohmann::json states = nlohmann::json::object();
  for (const ServiceHealth* s : services) states[s->name] = s->state;
  for (const ServiceHealth* s : services)
    if (!s->live)
      return {503,
              {{"ready", false},
               {"reason", "service '" + s->name + "' has no live generation (" + s->state + ")"},
               {"services", states}}};
  return {200, {{"ready", true}, {"services", states}}};
}

}  // namespace

HealthAnswer AnswerHealth(std::string_view method, std::string_view target, const HealthView& view) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/livez" && path != "/readyz" && path.substr(0, 8) != "/readyz/")
    return Error(404, "not found: this port serves only GET /livez, /readyz and /readyz/SERVICE");
  if (method != "GET" && method != "HEAD") return Error(405, "only GET and HEAD are served here");
  if (path == "/livez") return {200, {{"live", true}}};
  std::vector<const ServiceHealth*> services;
  if (path == "/readyz") {
    for (const auto& s : view.services) services.push_back(&s);
    return Readiness(view, services);
  }
  std::string_view name = path.substr(8);
  for (const auto& s : view.services)
    if (s.name == name) return Readiness(view, {&s});
  return Error(404, "no service named '" + std::string(name) + "'");
}

}  // namespace baton
