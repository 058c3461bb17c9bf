// Fuzz target: sd_notify datagrams (ParseNotifyMessage) and what a Service does with them:
// READY=1, STATUS=, STOPPING=1, FDSTORE=1/FDNAME=/FDSTOREREMOVE=1, from its worker or a
// stranger. The input is several datagrams separated by 0x1e; the first byte of each
// picks the sender. Driven through the fake clock and launcher, as the unit tests are.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "supervisor/base/json_text.h"
#include "supervisor/base/log.h"
#include "supervisor/handover/service.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_launcher.h"
#include "tests/fakes/fake_probe_runner.h"

using namespace baton;
using namespace std::chrono_literals;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  testing::FakeClock clock;
  testing::FakeLauncher launcher;
  testing::FakeProbeRunner probes;
  ServiceConfig config;
  config.name = "web";
  config.command = {"server", "{version}"};
  config.replicas = 2;
  config.ready.notify = true;
  config.ready.timeout = 5s;
  config.fd_store_max = 4;
  ServiceIo io;
  io.listeners.push_back(ListenerRef{"http", 7, 8080, "tcp://127.0.0.1:8080"});
  io.pick_probe_port = [] { return Result<int>(40000); };
  Service service(clock, launcher, probes, config, io, [](const ServiceEvent&) {});
  if (!service.Handover(Release{"v1", std::nullopt, {}, 0}, HandoverKind::kStart, [](const HandoverResult&) {}).ok())
    __builtin_trap();
  clock.RunDue();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    size_t end = input.find('\x1e');
    std::string_view datagram = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
    if (datagram.empty()) continue;
    std::vector<int> pids = launcher.RunningPids();
    int pick = static_cast<unsigned char>(datagram[0]) % (pids.size() + 1);
    int pid = pick < static_cast<int>(pids.size()) ? pids[pick] : 99999;  // the last choice: a stranger
    service.OnNotify(pid, ParseNotifyMessage(datagram.substr(1)));
    clock.Advance(100ms);
    (void)JsonText(service.Describe());  // as the control server writes it
  }
  return 0;
}
