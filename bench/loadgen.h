// HTTP load from several client threads against 127.0.0.1:PORT, keeping score: requests,
// failures by kind, latency percentiles, and which version answered (the token after
// "version=" in the body). Some clients open a fresh connection per request, others keep
// one connection alive.
//
// A keep-alive client whose reused connection turns out closed by the server before any
// byte of the answer arrived (a server draining its idle connections) retries once on a
// fresh connection, as HTTP clients do for idempotent requests (RFC 9112, 9.3.1); those
// retries are counted apart. Anything else that does not end in a complete 200 response
// is a failure.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace baton::bench {

struct LoadOptions {
  int port = 0;
  int fresh_clients = 2;      // a new connection per request
  int keepalive_clients = 2;  // one connection, reused
  std::string path = "/";
};

struct LoadReport {
  uint64_t ok = 0;
  uint64_t failed = 0;
  uint64_t stale_retries = 0;                // keep-alive connections closed by a draining server, retried
  std::map<std::string, uint64_t> errors;    // kind -> count
  std::map<std::string, uint64_t> versions;  // version -> responses
  // When each failed request started and ended (Unix seconds; the first kMaxFailureTimes),
  // so that a soak can tell the requests in flight on a worker it killed from the rest.
  std::vector<std::pair<double, double>> failure_times;
  static constexpr size_t kMaxFailureTimes = 100000;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::string Summary() const;
  std::string Json() const;  // the same figures, one JSON object, for scripts
};

class LoadGenerator {
 public:
  explicit LoadGenerator(LoadOptions options);
  ~LoadGenerator();
  void Stop();
  LoadReport Report() const;
  uint64_t ok() const { return ok_; }
  uint64_t failed() const { return failed_; }
  // Waits until a response from `version` arrives after this call.
  bool WaitForVersion(const std::string& version, std::chrono::milliseconds limit);

 private:
  void Run(bool keepalive);
  void Record(bool ok, const std::string& error_or_version, double ms, double started_unix);

  LoadOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0}, failed_{0}, stale_{0};
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> errors_, versions_;
  std::vector<double> latencies_ms_;
  std::vector<std::pair<double, double>> failure_times_;
  std::string last_version_;
  std::vector<std::thread> threads_;
};

}  // namespace baton::bench
