// The last lines workers wrote, per service, for `GET /v1/services/NAME/logs`. A bounded
// ring: the oldest lines go first, and how many were dropped is counted. Pure.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace baton {

struct LogLine {
  double time = 0;
  std::string version;
  int64_t generation = 0;
  int pid = 0;
  bool stderr_stream = false;
  std::string text;
  nlohmann::json ToJson(const std::string& service) const;
};

class LogBuffer {
 public:
  explicit LogBuffer(size_t capacity) : capacity_(capacity) {}
  void Add(LogLine line);
  // The last `n` lines, oldest first.
  std::vector<LogLine> Last(size_t n) const;
  uint64_t dropped() const { return dropped_; }
  size_t size() const { return lines_.size(); }

 private:
  size_t capacity_;
  std::deque<LogLine> lines_;
  uint64_t dropped_ = 0;
};

}  // namespace baton
