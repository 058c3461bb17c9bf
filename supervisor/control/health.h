// The health endpoint's answers, for load balancers and orchestrators (HAProxy `option
// httpchk`, nginx upstream checks, Consul): decided from what batond knows, without
// sockets (health_server does the I/O). Read-only; nothing else is served.
//
//   GET /livez            200 while batond runs
//   GET /readyz           200 when every service has a live, promoted generation and batond
//                         is not stopping; 503 with the reason otherwise
//   GET /readyz/SERVICE   the same for one service (404 for an unknown one)
//
// HEAD is answered as GET without the body; any other method gets 405, any other path 404.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace baton {

struct ServiceHealth {
  std::string name;
  bool live = false;  // it has a live (promoted) generation
  std::string state;  // its state, as status shows it: running, upgrading, down, ...
};

struct HealthView {
  bool stopping = false;
  std::vector<ServiceHealth> services;
};

struct HealthAnswer {
  int status = 200;
  nlohmann::json body;
};

HealthAnswer AnswerHealth(std::string_view method, std::string_view target, const HealthView& view);

}  // namespace baton
