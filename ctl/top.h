// `batonctl top`: a live view of batond in the terminal, redrawn whenever batond pushes a
// status (after each event, and every second for CPU and memory) and as events arrive. The
// frame is built by RenderTop (pure, unit-tested); RunTop does the terminal and the streams.
#pragma once

#include <nlohmann/json.hpp>

#include <deque>
#include <map>
#include <string>

namespace baton::ctl {

// What a view remembers between frames.
struct TopView {
  std::map<int, std::pair<double, double>> cpu;  // pid -> (CPU seconds, when), for a percentage
  std::deque<std::string> events;                // the latest, newest last
  static constexpr size_t kEvents = 8;
};

// A line for the view's event list from a line of /v1/events.
void AddTopEvent(TopView& view, const nlohmann::json& event);

// One frame: the daemon, every service with its handover in progress (a progress bar) and
// its generations and workers with RSS and CPU, then the latest events; at most `height`
// lines of at most `width` columns. `now` is the Unix time.
std::string RenderTop(const nlohmann::json& status, TopView& view, double now, int width, int height);

// Runs the view on the terminal until `q` (or Ctrl-C, or the end of input), then ends the
// process (its stream threads are blocked in reads): exit code 0. Returns 3 at once when
// batond does not answer.
int RunTop(const std::string& socket);

}  // namespace baton::ctl
