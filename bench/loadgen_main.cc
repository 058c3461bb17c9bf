// bench/loadgen: HTTP load against 127.0.0.1:PORT until SIGINT/SIGTERM or --seconds, then
// a report. Usage: loadgen --port P [--fresh N] [--keepalive N] [--seconds S] [--path /] [--json]
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "bench/loadgen.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  baton::bench::LoadOptions o;
  double seconds = 0;
  bool json = false;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) a = "";
    if (a == "--port")
      o.port = std::atoi(argv[i + 1]);
    else if (a == "--fresh")
      o.fresh_clients = std::atoi(argv[i + 1]);
    else if (a == "--keepalive")
      o.keepalive_clients = std::atoi(argv[i + 1]);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--path")
      o.path = argv[i + 1];
    else {
      std::cerr << "usage: loadgen --port P [--fresh N] [--keepalive N] [--seconds S] [--path /] [--json]\n";
      return 2;
    }
  }
  if (o.port <= 0) {
    std::cerr << "loadgen: --port is required\n";
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  baton::bench::LoadGenerator gen(o);
  auto start = std::chrono::steady_clock::now();
  while (!g_stop && (seconds <= 0 || std::chrono::steady_clock::now() - start < std::chrono::duration<double>(seconds)))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  gen.Stop();
  auto r = gen.Report();
  std::cout << (json ? r.Json() : r.Summary()) << std::endl;
  return r.failed == 0 ? 0 : 1;
}
