// ProbeRunner doing real I/O on the event loop: TCP connect, HTTP GET (2xx passes, via
// Boost.Beast), and exec probes through the ProcessLauncher (exit 0 passes).
#pragma once

#include "supervisor/health/probe.h"
#include "supervisor/process/launcher.h"

namespace boost::asio {
class io_context;
}

namespace baton {

class AsioProbeRunner : public ProbeRunner {
 public:
  AsioProbeRunner(boost::asio::io_context& io, ProcessLauncher& launcher) : io_(io), launcher_(launcher) {}
  void Run(const Probe& probe, Duration timeout, std::function<void(Status)> done) override;

 private:
  void RunNet(const Probe& probe, Duration timeout, std::function<void(Status)> done);
  void RunExec(const Probe& probe, Duration timeout, std::function<void(Status)> done);
  boost::asio::io_context& io_;
  ProcessLauncher& launcher_;
};

// Splits "http://HOST:PORT/path" or "HOST:PORT" into parts. Pure; exposed for tests.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string path = "/";
};
Result<HostPort> ParseProbeTarget(const std::string& target, bool is_url);

}  // namespace baton
