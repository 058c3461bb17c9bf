#include "bench/loadgen.h"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

namespace baton::bench {

namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port, std::string* error) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

enum class Outcome { kOk, kStale, kFailed };

// One request on `fd`; on success `version` holds the version that answered.
Outcome Exchange(int fd, const std::string& path, bool keepalive, std::string* version, std::string* error,
                 bool* server_closes) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: baton-loadgen\r\n" +
                    (keepalive ? "" : "Connection: close\r\n") + "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = std::string("write: ") + std::strerror(errno);
    return keepalive ? Outcome::kStale : Outcome::kFailed;
  }
  std::string res;
  char buf[8192];
  size_t header_end = std::string::npos, body_len = 0;
  bool have_length = false;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      *error = std::string("read: ") + std::strerror(errno);
      return res.empty() && keepalive && errno == ECONNRESET ? Outcome::kStale : Outcome::kFailed;
    }
    if (n == 0) {
      if (res.empty()) {
        *error = "connection closed before any response";
        return keepalive ? Outcome::kStale : Outcome::kFailed;
      }
      if (header_end != std::string::npos && !have_length) break;  // body ends at close
      *error = "connection closed mid-response";
      return Outcome::kFailed;
    }
    res.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos && (header_end = res.find("\r\n\r\n")) != std::string::npos) {
      std::string head = res.substr(0, header_end);
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      auto cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        have_length = true;
        body_len = std::stoul(lower.substr(cl + 15));
      }
      // HTTP/1.0 closes after each response unless it says keep-alive (RFC 9112, 9.3).
      bool http10 = lower.rfind("http/1.0", 0) == 0;
      *server_closes = lower.find("connection: close") != std::string::npos ||
                       (http10 && lower.find("connection: keep-alive") == std::string::npos);
    }
    if (header_end != std::string::npos && have_length && res.size() >= header_end + 4 + body_len) break;
  }
  if (res.rfind("HTTP/1.1 200", 0) != 0 && res.rfind("HTTP/1.0 200", 0) != 0) {
    *error = "status " + res.substr(0, std::min<size_t>(res.find("\r\n"), 40));
    return Outcome::kFailed;
  }
  std::string body = res.substr(header_end + 4);
  auto v = body.find("version=");
  *version = v == std::string::npos ? "?" : body.substr(v + 8, body.find_first_of(" \r\n", v + 8) - v - 8);
  return Outcome::kOk;
}

}  // namespace

std::string LoadReport::Summary() const {
  std::ostringstream out;
  out << ok << " ok, " << failed << " failed, " << stale_retries << " stale keep-alive retries; latency p50 " << p50_ms
      << " ms, p99 " << p99_ms << " ms, max " << max_ms << " ms; versions:";
  for (const auto& [v, n] : versions) out << " " << v << "=" << n;
  for (const auto& [e, n] : errors) out << "; error '" << e << "' x" << n;
  return out.str();
}

std::string LoadReport::Json() const {
  nlohmann::json j = {{"ok", ok},         {"failed", failed},     {"stale_retries", stale_retries},
                      {"errors", errors}, {"versions", versions}, {"p50_ms", p50_ms},
                      {"p99_ms", p99_ms}, {"max_ms", max_ms},     {"failure_times", failure_times}};
  return j.dump();
}

LoadGenerator::LoadGenerator(LoadOptions options) : options_(std::move(options)) {
  for (int i = 0; i < options_.fresh_clients; ++i) threads_.emplace_back([this] { Run(false); });
  for (int i = 0; i < options_.keepalive_clients; ++i) threads_.emplace_back([this] { Run(true); });
}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void LoadGenerator::Record(bool ok, const std::string& what, double ms, double started_unix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ok) {
    ++ok_;
    ++versions_[what];
    last_version_ = what;
    latencies_ms_.push_back(ms);
  } else {
    ++failed_;
    ++errors_[what];
    if (failure_times_.size() < LoadReport::kMaxFailureTimes)
      failure_times_.emplace_back(started_unix, started_unix + ms / 1000);
  }
}

void LoadGenerator::Run(bool keepalive) {
  int fd = -1;
  while (!stop_) {
    auto t0 = Clock::now();
    double started_unix = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::string error, version;
    bool reused = fd >= 0;
    if (fd < 0 && (fd = Connect(options_.port, &error)) < 0) {
      Record(false, error, 0, started_unix);
      // Nothing listens (or the backlog is full): do not spin a core while it lasts.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    bool server_closes = false;
    Outcome o = Exchange(fd, options_.path, keepalive, &version, &error, &server_closes);
    if (o == Outcome::kStale && reused) {
      ++stale_;  // the server closed an idle kept-alive connection: retry once, fresh
      ::close(fd);
      fd = Connect(options_.port, &error);
      o = fd < 0 ? Outcome::kFailed : Exchange(fd, options_.path, keepalive, &version, &error, &server_closes);
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    Record(o == Outcome::kOk, o == Outcome::kOk ? version : error, ms, started_unix);
    if (o != Outcome::kOk || !keepalive || server_closes) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) ::close(fd);
}

LoadReport LoadGenerator::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  LoadReport r;
  r.ok = ok_;
  r.failed = failed_;
  r.stale_retries = stale_;
  r.errors = errors_;
  r.versions = versions_;
  r.failure_times = failure_times_;
  std::vector<double> sorted = latencies_ms_;
  std::sort(sorted.begin(), sorted.end());
  if (!sorted.empty()) {
    r.p50_ms = sorted[sorted.size() / 2];
    r.p99_ms = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
    r.max_ms = sorted.back();
  }
  return r;
}

bool LoadGenerator::WaitForVersion(const std::string& version, std::chrono::milliseconds limit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_version_.clear();
  }
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (last_version_ == version) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval of a deadline wait
  }
  return false;
}

}  // namespace baton::bench
