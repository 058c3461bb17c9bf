#include "supervisor/logs/log_buffer.h"

namespace baton {

nlohmann::json LogLine::ToJson(const std::string& service) const {
  return {{"time", time},       {"service", service},
          {"version", version}, {"generation", generation},
          {"pid", pid},         {"stream", stderr_stream ? "stderr" : "stdout"},
          {"line", text}};
}

void LogBuffer::Add(LogLine line) {
  if (capacity_ == 0) return;
  if (lines_.size() == capacity_) {
    lines_.pop_front();
    ++dropped_;
  }
  lines_.push_back(std::move(line));
}

std::vector<LogLine> LogBuffer::Last(size_t n) const {
  size_t start = lines_.size() > n ? lines_.size() - n : 0;
  return std::vector<LogLine>(lines_.begin() + static_cast<long>(start), lines_.end());
}

}  // namespace baton
