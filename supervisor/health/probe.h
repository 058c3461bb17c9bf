// Probes: one attempt of an HTTP, TCP or exec check. The ProbeRunner interface is the seam
// between readiness decisions (pure, tested with a fake runner) and probe I/O (asio).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/clock.h"
#include "supervisor/base/status.h"

namespace baton {

struct Probe {
  enum class Kind { kHttp, kTcp, kExec };
  Kind kind = Kind::kTcp;
  std::string target;                                    // http: URL; tcp: HOST:PORT
  std::vector<std::string> argv;                         // exec
  std::vector<std::pair<std::string, std::string>> env;  // exec: the worker's environment
  std::string Describe() const;                          // "http http://127.0.0.1:9000/health"
};

class ProbeRunner {
 public:
  virtual ~ProbeRunner() = default;
  // Runs one attempt; `done` gets OK or the reason it failed. `done` is always called
  // later from the loop (never inside Run), at most `timeout` after the call.
  virtual void Run(const Probe& probe, Duration timeout, std::function<void(Status)> done) = 0;
};

}  // namespace baton
