// Fault injection against the real batond: workers that misbehave (ignore their stop
// signal, leave children behind, flood their output, flood or spoof sd_notify), control
// clients that abuse the socket, and resources that run out (descriptors, processes,
// disk). Each fault must be contained: the daemon answers, nothing leaks, the live
// generation keeps serving.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json DaemonInfo(Daemon& d) { return d.Api("GET", "/v1/status").body["daemon"]; }

int UnixConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Everything the peer sends until it closes (or 20 s pass).
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// The pids written after `tag` ("child=123") in `text`.
std::vector<int> PidsLogged(const std::string& text, const std::string& tag) {
  std::vector<int> pids;
  std::regex re(tag + "([0-9]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) pids.push_back(std::stoi((*it)[1]));
  return pids;
}

// AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.
#ifdef __SANITIZE_ADDRESS__
constexpr bool kMemoryMeasurable = false;
#else
constexpr bool kMemoryMeasurable = true;
#endif

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The slowest of GET /v1/status while `busy` holds (at least one request).
double SlowestStatusMs(Daemon& d, const std::function<bool()>& busy, std::chrono::seconds limit) {
  double slowest = 0;
  auto deadline = Clock::now() + limit;
  do {
    auto t0 = Clock::now();
    REQUIRE(d.Api("GET", "/v1/status").status == 200);
    slowest = std::max(slowest, Ms(Clock::now() - t0));
  } while (busy() && Clock::now() < deadline);
  return slowest;
}

const char* kNotifier = R"PY(
import os, signal, socket
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
def flood(*_):
    for i in range(20000):
        s.sendto(b"STATUS=message %d" % i, addr)
    s.sendto(b"STATUS=final \xff\xfe not utf-8", addr)
signal.signal(signal.SIGUSR1, flood)
while True:
    signal.pause()
)PY";

std::string FaultServices() {
  std::string notifier = kNotifier;
  for (size_t pos = 0; (pos = notifier.find('"', pos)) != std::string::npos; pos += 2) notifier.replace(pos, 1, "\\\"");
  for (size_t pos = 0; (pos = notifier.find('\n', pos)) != std::string::npos; pos += 2) notifier.replace(pos, 1, "\\n");
  for (size_t pos = 0; (pos = notifier.find("\\x", pos)) != std::string::npos; pos += 3)
    notifier.replace(pos, 2, "\\\\x");
  return WebService(2) + R"(
[service.stubborn]
command = ["/bin/sh", "-c", "trap '' TERM; (trap '' TERM; exec sleep 600) & echo child=$! >&2; while :; do sleep 1; done"]
version = "v1"
[service.stubborn.stop]
timeout = "1s"

[service.forker]
command = ["/bin/sh", "-c", "trap 'sleep 600 & a=$!; sleep 600 & echo kids=$a kids=$! >&2; exit 0' USR1; while :; do sleep 0.1; done"]
version = "v1"
[service.forker.restart]
backoff = "10s"

[service.flood]
command = ["/bin/sh", "-c", "trap 'head -c 30000000 /dev/zero | tr \"\\\\0\" x | fold -w 3000; printf \"\\\\377\\\\376 not utf-8\\\\n\"; echo flood-done' USR1; while :; do sleep 0.1; done"]
version = "v1"

[service.notifier]
command = ["/usr/bin/python3", "-c", ")" +
         notifier + R"("]
version = "v1"
[service.notifier.ready]
notify = true
)";
}

}  // namespace

TEST_CASE("fault suite on one daemon: misbehaving workers and abusive clients are contained, nothing leaks") {
  Daemon d(FaultServices(), "control_timeout = \"1s\"\nlog_lines = 1000\n");
  d.Start();
  INFO(d.Log().substr(0, 4000));
  int web = d.Port("web");
  Load load(web, 4);
  REQUIRE(load.WaitForVersion("v1"));
  nlohmann::json before = DaemonInfo(d);
  size_t fds_before = before["open_fds"].get<size_t>();
  double rss_before = before["rss_bytes"].get<double>() / (1 << 20);

  // 1. sd_notify from a process that is no worker: ignored and counted, each one.
  {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s/state/notify.sock", d.dir().c_str());
    for (int i = 0; i < 1000; ++i)
      REQUIRE(::sendto(fd, "READY=1\nSTATUS=spoofed", 22, 0, reinterpret_cast<sockaddr*>(&a), sizeof a) == 22);
    ::close(fd);
    CHECK(WaitFor([&] { return DaemonInfo(d)["notify_ignored"] == 1000; }));
  }

  // 2. A worker sending 20000 sd_notify messages, the last not UTF-8: all read, the
  // daemon answering meanwhile, and the status still serialises.
  REQUIRE(d.Ctl({"signal", "notifier", "USR1"}).exit_code == 0);
  auto last_status = [&] {
    nlohmann::json s = d.Service("notifier");
    return s["generations"][0]["workers"][0].value("status", std::string());
  };
  double slowest = SlowestStatusMs(
      d, [&] { return last_status().rfind("final", 0) != 0; }, 60s);
  CHECK(last_status().rfind("final \xEF\xBF\xBD", 0) == 0);  // the bad bytes became U+FFFD
  CHECK(slowest < 1000);
  WARN("status latency during the sd_notify flood: slowest " << slowest << " ms");

  // 3. 30 MB of output at once: memory stays bounded, the loop answers, and what the ring
  // could not keep is counted, not silently lost.
  REQUIRE(d.Ctl({"signal", "flood", "USR1"}).exit_code == 0);
  double peak_rss = 0;
  auto flooding = [&] {
    peak_rss = std::max(peak_rss, DaemonInfo(d)["rss_bytes"].get<double>() / (1 << 20));
    return d.Api("GET", "/v1/services/flood/logs?lines=3").raw.find("flood-done") == std::string::npos;
  };
  slowest = SlowestStatusMs(d, flooding, 120s);
  auto logs = d.Api("GET", "/v1/services/flood/logs?lines=3");
  REQUIRE(logs.status == 200);  // a line that is not UTF-8 among them
  CHECK(logs.raw.find("flood-done") != std::string::npos);
  CHECK(logs.body["dropped"].get<uint64_t>() >= 9000);
  if (kMemoryMeasurable) CHECK(peak_rss < rss_before + 64);
  CHECK(slowest < 2000);
  WARN("output flood: RSS " << rss_before << " MiB before, peak " << peak_rss << " MiB; slowest status " << slowest
                            << " ms; " << logs.body["dropped"] << " lines dropped from the ring, counted");

  // 4. A worker and its child that ignore SIGTERM: SIGKILL to the group after stop.timeout.
  std::vector<int> stubborn = d.WorkerPids("stubborn");
  std::vector<int> child = PidsLogged(d.Api("GET", "/v1/services/stubborn/logs").raw, "child=");
  REQUIRE(stubborn.size() == 1);
  REQUIRE(child.size() == 1);
  auto t0 = Clock::now();
  REQUIRE(d.Ctl({"stop", "stubborn"}).exit_code == 0);
  double stop_ms = Ms(Clock::now() - t0);
  CHECK(stop_ms >= 1000);
  CHECK(stop_ms < 5000);
  CHECK(!ProcessAlive(stubborn[0]));
  CHECK(WaitFor([&] { return !ProcessAlive(child[0]); }, 2s));
  CHECK(d.Log().find("stubborn gen 1 (v1): kill: worker 0 still running after stop.timeout") != std::string::npos);

  // 5. A worker that forks two children and exits: the children go with it.
  REQUIRE(d.Ctl({"signal", "forker", "USR1"}).exit_code == 0);
  auto kids = [&] { return PidsLogged(d.Api("GET", "/v1/services/forker/logs").raw, "kids="); };
  REQUIRE(WaitFor([&] { return kids().size() == 2; }));
  for (int kid : kids()) CHECK(WaitFor([&] { return !ProcessAlive(kid); }, 5s));

  // 6. Control socket abuse, each with a well-behaved client alongside.
  {
    // Slowloris: a header byte every 100 ms; the whole request has control_timeout (1 s).
    int slow = UnixConnect(d.socket());
    REQUIRE(slow >= 0);
    std::string request = "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(60, 'a');
    auto start = Clock::now();
    bool closed = false;
    for (char c : request) {
      if (::send(slow, &c, 1, MSG_NOSIGNAL) != 1) {
        closed = true;
        break;
      }
      CHECK(d.Api("GET", "/v1/status").status == 200);
      std::this_thread::sleep_for(100ms);  // the attacker's pace, not a wait for a condition
    }
    CHECK(closed);
    CHECK(Ms(Clock::now() - start) < 3000);
    ::close(slow);
  }
  {
    // 10 MB body: refused once it passes the limit, without reading it all.
    int big = UnixConnect(d.socket());
    std::string head = "POST /v1/services/web/scale HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n";
    REQUIRE(::send(big, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size()));
    std::string chunk(64 * 1024, '[');
    for (int i = 0; i < 160; ++i)
      if (::send(big, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
    CHECK(ReadAll(big).rfind("HTTP/1.1 413", 0) == 0);
    ::close(big);
  }
  {
    // Not UTF-8 in the path, deeply nested JSON, JSON with invalid UTF-8 in a string.
    int bad = UnixConnect(d.socket());
    std::string request = "GET /v1/services/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(bad, request.data(), request.size(), MSG_NOSIGNAL);
    std::string answer = ReadAll(bad);
    ::close(bad);
    CHECK(answer.rfind("HTTP/1.1 404", 0) == 0);
    CHECK(answer.find("\xEF\xBF\xBD") != std::string::npos);
    CHECK(d.Api("POST", "/v1/services/web/scale", std::string(500000, '[')).status == 400);
    CHECK(d.Api("POST", "/v1/services/web/upgrade", "{\"version\": \"v\xff\"}").status == 400);
  }

  // Afterwards: the same descriptors as before, memory within bounds, no handler threw,
  // the web service served throughout and still hands over.
  REQUIRE(d.Ctl({"start", "stubborn"}).exit_code == 0);
  REQUIRE(WaitFor([&] { return d.WorkerPids("forker").size() == 1; }, 20s));
  nlohmann::json after = DaemonInfo(d);
  double rss_after = after["rss_bytes"].get<double>() / (1 << 20);
  CHECK(after["open_fds"].get<size_t>() == fds_before);
  CHECK(after["handler_exceptions"] == 0);
  if (kMemoryMeasurable) CHECK(rss_after < rss_before + 32);
  WARN("whole fault suite: open fds " << fds_before << " before, " << after["open_fds"] << " after; RSS " << rss_before
                                      << " MiB before, " << rss_after << " MiB after");
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("near RLIMIT_NOFILE: control clients beyond the reserve get 503, nothing leaks, the service carries on") {
  // Under the sanitizers too: their runtime needs a pipe(2) to check memory, and batond's
  // reserve of descriptors is what keeps one possible (without it, UBSan reported a valid
  // error_category as an invalid vptr once the process had no descriptor left).
  Daemon d(WebService(2), "control_timeout = \"1s\"\n");
  d.Start();
  INFO(d.Log().substr(0, 4000));
  size_t fds_before = DaemonInfo(d)["open_fds"].get<size_t>();
  // Room for 16 control clients beyond what batond holds now and the reserve it keeps.
  const size_t kReserve = 32;  // kControlFdReserve in supervisor/sockets/fd_limit.h
  std::string limit = std::to_string(fds_before + 16 + kReserve);
  REQUIRE(
      RunCommand({"/usr/bin/prlimit", "--pid", std::to_string(d.pid()), "--nofile=" + limit + ":" + limit}).exit_code ==
      0);
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  std::vector<int> idle;  // more than batond will serve at once: the rest are answered 503
  for (int i = 0; i < 60; ++i) idle.push_back(UnixConnect(d.socket()));
  // Accepted idle clients time out (control_timeout), so ours gets through.
  bool answered = WaitFor([&] { return d.Api("GET", "/v1/status").status == 200; }, 30s);
  if (!answered) {
    std::string log = d.Log();
    size_t from = log.find("    #0 ");
    from = from == std::string::npos ? (log.size() > 3000 ? log.size() - 3000 : 0) : (from > 1500 ? from - 1500 : 0);
    FAIL_CHECK("no answer; batond's log:\n" << log.substr(from, 6000));
  }
  size_t busy = 0;
  for (int fd : idle) {
    std::string answer = ReadAll(fd);  // a 503, or nothing from a session that timed out
    if (answer.rfind("HTTP/1.1 503", 0) == 0) {
      ++busy;
      CHECK(nlohmann::json::parse(answer.substr(answer.find("\r\n\r\n") + 4))["error"]["code"] == "unavailable");
    }
    ::close(fd);
  }
  // About 16 were served (a few more where the descriptor table has gaps below batond's
  // highest descriptor), and timed out idle; the rest were answered 503 at once.
  WARN(busy << " of 60 idle clients answered 503");
  CHECK(busy >= 60 - 16 - 8);
  CHECK(busy < 60);
  CHECK(DaemonInfo(d)["control_shed"].get<size_t>() >= busy);
  CHECK(d.Log().find("control: near the open-file limit") != std::string::npos);
  CHECK(d.Log().find("Too many open files") == std::string::npos);  // the reserve was never touched
  CHECK(WaitFor([&] { return DaemonInfo(d)["open_fds"] == fds_before; }, 10s));
  auto upgrade = d.Ctl({"upgrade", "web", "--version", "v2"});
  INFO(upgrade.output);
  REQUIRE(upgrade.exit_code == 0);  // new pipes and pidfds fit
  REQUIRE(load.WaitForVersion("v2"));
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("RLIMIT_NPROC reached in a handover: the fork fails cleanly and the old generation keeps serving") {
  if (::geteuid() != 0) {
    SKIP_TEST("running batond as another uid needs root");
  }
  Daemon d("");
  // batond runs as a uid of its own with room for itself, its two workers and one more
  // process. RLIMIT_NPROC counts every process of the uid: as nobody (65534), the workers
  // and clients of tests running beside this one took that room now and then.
  const std::string uid = "64123";  // in no passwd file, and used by no other test
  for (auto [from, to] :
       {std::pair<std::string, std::string>{TEST_WORKER_PATH, "test_worker"}, {BATOND_PATH, "batond"}})
    std::filesystem::copy_file(from, d.dir() + "/" + to);
  // (LeakSanitizer's exit check needs a thread of its own, which the limit forbids.)
  std::string service = WebService(2, "env = { ASAN_OPTIONS = \"detect_leaks=0\" }\n");
  service.replace(service.find("@WORKER@"), 8, d.dir() + "/test_worker");
  d.WriteConfig(service);
  REQUIRE(RunCommand({"/bin/chown", "-R", uid + ":" + uid, d.dir()}).exit_code == 0);
  REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
  int others = std::stoi(RunCommand({"/bin/sh", "-c", "ps -U " + uid + " -o pid= | wc -l"}).output);
  d.SetWrapper(
      {"/usr/bin/env", "ASAN_OPTIONS=detect_leaks=0", "/usr/bin/prlimit", "--nproc=" + std::to_string(others + 4),
       "/usr/bin/setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups"},
      d.dir() + "/batond");
  d.Start();
  INFO(d.Log().substr(0, 4000));
  std::vector<int> workers = d.WorkerPids("web");
  Load load(d.Port("web"), 4);
  REQUIRE(load.WaitForVersion("v1"));
  auto r = d.Ctl({"upgrade", "web", "--version", "v2"});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("clone: Resource temporarily unavailable") != std::string::npos);
  CHECK(d.WorkerPids("web") == workers);
  CHECK(d.Service("web")["version"] == "v1");
  CHECK(d.Api("GET", "/v1/status").status == 200);
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  // The v2 worker that forked before the second fork failed listened on a socket of its
  // own, which the kernel never sent a connection to: it was never ready.
  CHECK(load.versions().count("v2") == 0);
}

TEST_CASE(
    "state directory on a full file system: history writes fail loudly, the file stays whole, batond carries on") {
  if (::geteuid() != 0) {
    SKIP_TEST("mounting a small tmpfs needs root");
  }
  Daemon d(WebService(1));
  std::string state = d.dir() + "/state";
  std::filesystem::create_directories(state);
  REQUIRE(::mount("tmpfs", state.c_str(), "tmpfs", 0, "size=256k,mode=0700") == 0);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{state};
  d.Start();
  INFO(d.Log().substr(0, 4000));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  auto slurp = [&] {
    std::ifstream in(state + "/history.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string saved = slurp();
  REQUIRE(saved.find("\"v2\"") != std::string::npos);
  {
    int fd = ::open((state + "/fill").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    CHECK(errno == ENOSPC);
    ::close(fd);
  }
  // The handover goes ahead; the record of it cannot be written, and says so.
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v3"}).exit_code == 0);
  nlohmann::json info = DaemonInfo(d);
  CHECK_THAT(info["history_error"].get<std::string>(), Catch::Contains("No space left on device"));
  CHECK(d.Log().find("web: history not saved") != std::string::npos);
  CHECK(slurp() == saved);  // the previous complete file, untouched and readable
  CHECK(!std::filesystem::exists(state + "/history.json.tmp"));
  CHECK(nlohmann::json::parse(slurp())["services"]["web"].size() == 2);
  // Space again: the next write saves everything, the v3 record included.
  std::filesystem::remove(state + "/fill");
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v4"}).exit_code == 0);
  CHECK(DaemonInfo(d)["history_error"].is_null());
  nlohmann::json history = nlohmann::json::parse(slurp())["services"]["web"];
  REQUIRE(history.size() == 4);
  CHECK(history[2]["version"] == "v3");
  CHECK(history[3]["version"] == "v4");
}
