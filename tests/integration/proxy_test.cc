// Proxy mode with real servers that bind their own port: python3 -m http.server under
// load through upgrades, long-lived connections across a handover, 100 MB each way,
// half-close both ways, the PROXY protocol header, the connection limit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

const std::string kBackend = std::string(PROJECT_SOURCE_DIR) + "/tests/helpers/proxy_backend.py";

// A blocking client connection with a receive deadline.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Conn() { ::close(fd_); }
  bool connected() const { return connected_; }
  int local_port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }
  bool Send(const std::string& data) { return Send(data.data(), data.size()); }
  bool Send(const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd_, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  int error() const { return error_; }  // of the last read: 0 for an orderly close
  // One line without its newline; "" on timeout or close (then error() tells which).
  std::string Line() {
    while (buffer_.find('\n') == std::string::npos) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      error_ = n < 0 ? errno : 0;
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
    std::string line = buffer_.substr(0, buffer_.find('\n'));
    buffer_.erase(0, line.size() + 1);
    return line;
  }
  // Reads until the peer half-closes; returns the byte count and CRC-32 of everything
  // read since the last Line(), or -1 on error.
  std::pair<long, uint32_t> ReadToEnd() {
    if (!Read(SIZE_MAX)) return {-1, 0};
    return {received_, crc_.checksum()};
  }
  // Reads `n` bytes into the count and CRC-32 that ReadToEnd reports; false on an error,
  // or on the peer's close (unless reading to the end).
  bool Read(size_t n) {
    bool to_end = n == SIZE_MAX;
    size_t from_buffer = std::min(n, buffer_.size());
    crc_.process_bytes(buffer_.data(), from_buffer);
    buffer_.erase(0, from_buffer);
    received_ += static_cast<long>(from_buffer);
    n -= from_buffer;
    std::vector<char> buf(1 << 16);
    while (n > 0) {
      ssize_t r = ::recv(fd_, buf.data(), std::min(buf.size(), n), 0);
      if (r == 0) return to_end;
      if (r < 0) return false;
      crc_.process_bytes(buf.data(), static_cast<size_t>(r));
      received_ += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  int error_ = 0;
  std::string buffer_;
  boost::crc_32_type crc_;
  long received_ = 0;
};

// The backend's byte pattern: byte i is i * 7 % 251.
std::string Pattern(size_t n, size_t offset) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((offset + i) * 7 % 251);
  return s;
}

// proxy_backend.py as service "echo", proxied listener "tcp".
std::string BackendService(const std::string& listen_extra = "", const std::string& extra_args = "") {
  return R"(
[service.echo]
command = ["/usr/bin/python3", ")" +
         kBackend + R"(", "{version}", "{port:tcp}")" + extra_args + R"(]
version = "v1"
bake_time = "0s"
[service.echo.listen]
tcp = { address = "tcp://127.0.0.1:0", mode = "proxy")" +
         listen_extra + R"( }
[service.echo.ready]
timeout = "10s"
interval = "20ms"
[service.echo.stop]
timeout = "5s"
drain_timeout = "30s"
)";
}

int LiveGeneration(Daemon& d, const std::string& service) {
  nlohmann::json status = d.Service(service);  // named: a temporary would die before the loop body
  for (const auto& g : status["generations"])
    if (g["state"] == "live") return g["id"];
  return 0;
}

bool GenerationGone(Daemon& d, const std::string& service, int id) {
  nlohmann::json status = d.Service(service);
  for (const auto& g : status["generations"])
    if (g["id"] == id) return false;
  return true;
}

}  // namespace

TEST_CASE("proxy mode: python3 -m http.server upgrades 20 times under load without a failed request") {
  TempDir www;
  for (const char* v : {"v1", "v2", "v3-unhealthy"}) {
    std::filesystem::create_directories(www.path + "/" + v);
    std::ofstream(www.path + "/" + v + "/index.html") << "version=" << v << " \n";
    if (std::string(v) != "v3-unhealthy") std::ofstream(www.path + "/" + v + "/health") << "ok\n";
  }
  Daemon d(R"(
[service.web]
command = ["/usr/bin/python3", "-m", "http.server", "{port:http}", "--bind", "127.0.0.1", "--directory", ")" +
           www.path + R"(/{version}"]
version = "v1"
replicas = 2
bake_time = "0s"
[service.web.listen]
http = { address = "tcp://127.0.0.1:0", mode = "proxy" }
[service.web.ready]
http = "http://127.0.0.1:{port:http}/health"
timeout = "3s"
interval = "20ms"
[service.web.stop]
timeout = "5s"
)");
  // v3-unhealthy starts and binds its port but never passes the health check: it must
  // never see a request, and the live generation keeps serving.
  auto report = ZeroDropUpgrades(d, "web", "v3-unhealthy", {}, "/health");
  auto proxy = d.Service("web")["proxies"][0];
  CHECK(proxy["errors"] == 0);
  CHECK(proxy["total"].get<uint64_t>() >= report.ok);
}

TEST_CASE("proxy mode: a connection opened before an upgrade stays with the old generation until it closes") {
  Daemon d(BackendService());
  d.Start();
  INFO(d.Log());
  int port = d.Port("echo", "tcp");
  Conn old_conn(port);
  REQUIRE(old_conn.connected());
  REQUIRE(old_conn.Send("version\n"));
  REQUIRE(old_conn.Line() == "v1");
  int old_gen = LiveGeneration(d, "echo");
  std::vector<int> old_pids = d.WorkerPids("echo");

  auto r = d.Ctl({"upgrade", "echo", "--version", "v2", "--no-wait-drain"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  Conn fresh(port);
  REQUIRE(fresh.Send("version\n"));
  CHECK(fresh.Line() == "v2");
  // The old generation was not stopped under its open connection, which still works.
  for (int pid : old_pids) CHECK(ProcessAlive(pid));
  REQUIRE(old_conn.Send("version\n"));
  CHECK(old_conn.Line() == "v1");
  auto status = d.Service("echo");
  for (const auto& g : status["generations"])
    if (g["id"] == old_gen) CHECK(g["proxied_connections"] == 1);

  old_conn.ShutdownWrite();  // the client is done: the old generation can go
  CHECK(WaitFor([&] { return GenerationGone(d, "echo", old_gen); }, 10s));
  for (int pid : old_pids) CHECK(WaitFor([&] { return !ProcessAlive(pid); }, 5s));
  REQUIRE(fresh.Send("version\n"));
  CHECK(fresh.Line() == "v2");
}

TEST_CASE("proxy mode: 100 MB each way arrive intact, and half-close is passed on both ways") {
  Daemon d(BackendService());
  d.Start();
  INFO(d.Log());
  int port = d.Port("echo", "tcp");
  const size_t kSize = 100 * 1000 * 1000;

  // Upload, then half-close: the backend sees the end and can still answer.
  Conn up(port);
  REQUIRE(up.Send("sink\n"));
  boost::crc_32_type sent;
  std::string chunk = Pattern(251 * 4096, 0);
  for (size_t done = 0; done < kSize;) {
    size_t n = std::min(chunk.size(), kSize - done);
    REQUIRE(up.Send(chunk.data(), n));
    sent.process_bytes(chunk.data(), n);
    done += n;
  }
  up.ShutdownWrite();
  CHECK(up.Line() == std::to_string(kSize) + " " + std::to_string(sent.checksum()));

  // Download: the backend half-closes after the data; the client can still send.
  Conn down(port);
  REQUIRE(down.Send("source " + std::to_string(kSize) + "\n"));
  auto [bytes, crc] = down.ReadToEnd();
  boost::crc_32_type expected;
  for (size_t done = 0; done < kSize;) {
    size_t n = std::min(chunk.size(), kSize - done);
    expected.process_bytes(chunk.data(), n);
    done += n;
  }
  CHECK(bytes == static_cast<long>(kSize));
  CHECK(crc == expected.checksum());
  REQUIRE(down.Send("still here\n"));
  CHECK(WaitFor([&] { return d.Log().find("after half-close: still here") != std::string::npos; }, 10s));

  auto proxy = d.Service("echo")["proxies"][0];
  CHECK(proxy["bytes_in"].get<uint64_t>() >= kSize);
  CHECK(proxy["bytes_out"].get<uint64_t>() >= kSize);
}

TEST_CASE("proxy mode: the PROXY protocol header tells the backend the real client address") {
  Daemon d(BackendService(", proxy_protocol = true", ", \"--proxy-protocol\""));
  d.Start();
  INFO(d.Log());
  Conn c(d.Port("echo", "tcp"));
  REQUIRE(c.Send("peer\n"));
  CHECK(c.Line() == "127.0.0.1:" + std::to_string(c.local_port()));
  REQUIRE(c.Send("version\n"));  // and the stream goes on after the header
  CHECK(c.Line() == "v1");
}

TEST_CASE("proxy mode: beyond max_connections, clients wait in the queue instead of being refused") {
  Daemon d(BackendService(", max_connections = 2"));
  d.Start();
  INFO(d.Log());
  int port = d.Port("echo", "tcp");
  Conn a(port), b(port);
  REQUIRE(a.Send("version\n"));
  REQUIRE(a.Line() == "v1");
  REQUIRE(b.Send("version\n"));
  REQUIRE(b.Line() == "v1");
  Conn c(port);  // the kernel completes the handshake; batond does not accept it yet
  REQUIRE(c.connected());
  REQUIRE(c.Send("version\n"));
  CHECK(WaitFor([&] { return d.Service("echo")["proxies"][0]["paused"] == true; }, 5s));
  CHECK(d.Service("echo")["proxies"][0]["active"] == 2);
  a.ShutdownWrite();  // one leaves: the waiting client is served
  CHECK(c.Line() == "v1");
  CHECK(d.Service("echo")["proxies"][0]["total"] == 3);
}

TEST_CASE("proxy mode: a reset from the backend reaches the client as a reset") {
  Daemon d(BackendService());
  d.Start();
  INFO(d.Log());
  Conn c(d.Port("echo", "tcp"));
  REQUIRE(c.Send("reset\n"));
  CHECK(c.Line().empty());
  CHECK(c.error() == ECONNRESET);
  CHECK(WaitFor([&] { return d.Service("echo")["proxies"][0]["resets"] == 1; }, 5s));
}

TEST_CASE("proxy mode: a backend that refuses is retried a bounded number of times, then the client is reset") {
  Daemon d(BackendService(", connect_retries = 2"));
  d.Start();
  INFO(d.Log());
  int port = d.Port("echo", "tcp");
  Conn first(port);
  REQUIRE(first.Send("unlisten\n"));
  REQUIRE(first.Line() == "unlistened");
  Conn refused(port);
  REQUIRE(refused.Send("version\n"));
  CHECK(refused.Line().empty());
  CHECK(refused.error() == ECONNRESET);
  auto proxy = d.Service("echo")["proxies"][0];
  CHECK(proxy["errors"] == 1);
  CHECK(proxy["retries"] == 2);
  // The refusal itself is seen (through the proxy's epoll set), not a connect timeout.
  CHECK_THAT(d.Log(), Catch::Contains("Connection refused after 3 attempt(s)"));
  REQUIRE(first.Send("version\n"));  // connections already through are untouched
  CHECK(first.Line() == "v1");
}

TEST_CASE("proxy mode: idle_timeout closes a connection that carries nothing") {
  Daemon d(BackendService(", idle_timeout = \"300ms\""));
  d.Start();
  INFO(d.Log());
  Conn c(d.Port("echo", "tcp"));
  REQUIRE(c.Send("version\n"));
  REQUIRE(c.Line() == "v1");
  auto [bytes, crc] = c.ReadToEnd();  // returns once batond closes the idle connection
  CHECK(bytes == 0);
  (void)crc;
  CHECK(d.Service("echo")["proxies"][0]["idle_closed"] == 1);
}

TEST_CASE("proxy mode: self-upgrades carry open connections over, bytes in flight included") {
  Daemon d(BackendService());
  d.Start();
  INFO(d.Log());
  int port = d.Port("echo", "tcp");
  const size_t kSize = 40 * 1000 * 1000, kStep = 2 * 1000 * 1000;
  Conn chat(port), down(port), up(port);
  REQUIRE(chat.Send("version\n"));
  REQUIRE(chat.Line() == "v1");
  REQUIRE(down.Send("source " + std::to_string(kSize) + "\n"));  // the reader lags: buffers and pipes fill
  REQUIRE(up.Send("sink\n"));
  boost::crc_32_type sent;
  size_t uploaded = 0;
  for (int i = 1; i <= 10; ++i) {
    REQUIRE(down.Read(kStep));
    std::string chunk = Pattern(kStep, uploaded);
    REQUIRE(up.Send(chunk));
    sent.process_bytes(chunk.data(), chunk.size());
    uploaded += chunk.size();
    auto r = d.Ctl({"self-upgrade"});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("3 proxied connection(s)") != std::string::npos);
    REQUIRE(chat.Send("version\n"));
    CHECK(chat.Line() == "v1");
  }
  auto [bytes, crc] = down.ReadToEnd();
  boost::crc_32_type expected;
  std::string all = Pattern(kSize, 0);
  expected.process_bytes(all.data(), all.size());
  CHECK(bytes == static_cast<long>(kSize));
  CHECK(crc == expected.checksum());
  up.ShutdownWrite();
  CHECK(up.Line() == std::to_string(uploaded) + " " + std::to_string(sent.checksum()));
  auto proxy = d.Service("echo")["proxies"][0];
  CHECK(proxy["errors"] == 0);
  CHECK(proxy["resets"] == 0);
  CHECK(d.Api("GET", "/v1/status").body["daemon"]["pid"] == d.pid());
}
