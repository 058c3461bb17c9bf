#include "ctl/top.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "ctl/client.h"
#include "ctl/format.h"
#include "supervisor/control/protocol.h"

namespace baton::ctl {

namespace {

std::string Mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

std::string Clock(double t) {
  std::time_t at = static_cast<std::time_t>(t);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&at));
  return buf;
}

// "[#######.......]" for `done` of `total`.
std::string Bar(double done, double total, int width) {
  int filled = total > 0 ? static_cast<int>(std::lround(width * std::min(1.0, done / total))) : 0;
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

// At most `width` visible columns of `line` (colour codes do not count, and are reset).
std::string Clip(const std::string& line, int width) {
  std::string out;
  int shown = 0;
  bool painted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\033') {
      size_t end = line.find('m', i);
      if (end == std::string::npos) break;
      out.append(line, i, end - i + 1);
      painted = true;
      i = end;
      continue;
    }
    bool starts_char = (static_cast<unsigned char>(line[i]) & 0xC0) != 0x80;
    if (starts_char && shown == width) break;
    shown += starts_char;
    out += line[i];
  }
  return painted ? out + "\033[0m" : out;
}

// The handover of a service in progress, with a progress bar: a progressive one by its
// steps, another by its new workers that are ready.
std::string HandoverLines(const nlohmann::json& s) {
  const auto& h = Get(s, "handover");
  if (!h.is_object()) return "";
  std::string out =
      "  " + Str(h, "kind") + " to " + Bold(Str(h, "version")) + " (generation " + Str(h, "generation") + ") ";
  const auto& p = Get(h, "progressive");
  if (p.is_object()) {
    double weight = Value(p, "weight", 0.0);
    out += Bar(weight, 100, 20) + " step " + Str(p, "step") + "/" + std::to_string(Get(p, "steps").size()) + ", " +
           Str(p, "weight") + "% of new connections" + (Value(p, "paused", false) ? ", " + State("paused") : "") + "\n";
    return out;
  }
  int ready = 0;
  for (const auto& g : Get(s, "generations"))
    if (Value(g, "id", int64_t{0}) == Value(h, "generation", int64_t{-1}))
      for (const auto& w : Get(g, "workers")) ready += Get(w, "state") == "ready";
  int replicas = Value(s, "replicas", 1);
  return out + Bar(ready, replicas, 20) + " " + std::to_string(ready) + "/" + std::to_string(replicas) + " ready\n";
}

std::string WorkerRows(const nlohmann::json& s, TopView& view, double now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : Get(s, "generations"))
    for (const auto& w : Get(g, "workers")) {
      int pid = Value(w, "pid", 0);
      const auto& usage = Get(w, "usage");
      std::string rss = "-", cpu = "-";
      if (usage.is_object()) {
        rss = Mib(Value(usage, "rss_bytes", uint64_t{0}));
        double cpu_s = Value(usage, "cpu_s", 0.0);
        auto before = view.cpu.find(pid);
        if (before != view.cpu.end() && now > before->second.second) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "%.1f", 100 * (cpu_s - before->second.first) / (now - before->second.second));
          cpu = buf;
        }
        view.cpu[pid] = {cpu_s, now};
      }
      std::string status = Str(w, "status", "");
      if (status.empty()) status = Str(w, "last_exit", "");
      rows.push_back({"  " + Str(g, "id"), Str(g, "version"), State(Str(g, "state")), Str(w, "id"),
                      pid ? std::to_string(pid) : "-", State(Str(w, "state")), Str(w, "restarts"), rss, cpu, status});
    }
  return Table({"  GEN", "VERSION", "STATE", "WORKER", "PID", "STATE", "RESTARTS", "RSS", "CPU%", "STATUS"}, rows);
}

}  // namespace

void AddTopEvent(TopView& view, const nlohmann::json& e) {
  std::string line = Dim(Clock(Value(e, "time", 0.0))) + " " + Str(e, "service") + " " + Bold(Str(e, "type")) + " " +
                     Str(e, "message", "");
  view.events.push_back(std::move(line));
  while (view.events.size() > TopView::kEvents) view.events.pop_front();
}

std::string RenderTop(const nlohmann::json& status, TopView& view, double now, int width, int height) {
  std::vector<std::string> lines;
  auto add = [&](const std::string& text) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  };
  const auto& d = Get(status, "daemon");
  add(Bold("batond " + Str(d, "version")) + "  pid " + Str(d, "pid") + "  up " +
      Age(now - Value(d, "uptime_s", 0.0), now) + "  RSS " + Mib(Value(d, "rss_bytes", uint64_t{0})) + "  " +
      Clock(now) + "  " + Dim("q quits"));
  for (const auto& s : Get(status, "services")) {
    lines.push_back("");
    add(Bold(Str(s, "name")) + "  " + State(Str(s, "state")) + "  version " + Str(s, "version") + "  replicas " +
        Str(s, "replicas"));
    add(HandoverLines(s));
    add(WorkerRows(s, view, now));
  }
  // Events below the services, as many of the latest as fit.
  int room = height - static_cast<int>(lines.size()) - 2;
  if (room > 0 && !view.events.empty()) {
    lines.push_back("");
    lines.push_back(Bold("events"));
    size_t first = view.events.size() > static_cast<size_t>(room) ? view.events.size() - room : 0;
    for (size_t i = first; i < view.events.size(); ++i) lines.push_back(view.events[i]);
  }
  std::string out;
  for (int i = 0; i < static_cast<int>(lines.size()) && i < height; ++i) out += Clip(lines[i], width) + "\n";
  return out;
}

namespace {

// The terminal in raw mode on the alternate screen, restored however the view ends.
class Screen {
 public:
  Screen() {
    if (::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~(ICANON | ECHO | ISIG);  // Ctrl-C arrives as a key: the screen is restored
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      restore_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    std::cout << "\033[?1049h\033[?25l" << std::flush;
  }
  ~Screen() {
    std::cout << "\033[?25h\033[?1049l" << std::flush;
    if (restore_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  static std::pair<int, int> Size() {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return {ws.ws_col, ws.ws_row};
    return {80, 24};
  }
  // Home, each line cleared to its end, then the rest of the screen.
  static void Draw(const std::string& frame) {
    std::string out = "\033[H";
    for (size_t at = 0, nl; (nl = frame.find('\n', at)) != std::string::npos; at = nl + 1)
      out += frame.substr(at, nl - at) + "\033[K\r\n";
    std::cout << out << "\033[J" << std::flush;
  }

 private:
  termios saved_{};
  bool restore_ = false;
};

// What the two stream threads hand the drawing thread, and a pipe to wake it.
struct Shared {
  std::mutex mu;
  std::optional<nlohmann::json> status;
  std::deque<nlohmann::json> events;
  std::string error;  // a stream ended: why
  int wake[2] = {-1, -1};
  void Wake() { (void)!::write(wake[1], "x", 1); }
};

double NowSeconds() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9;
}

// Redraws on every push from the streams, and each second for the clock, until `q`.
void DrawUntilQuit(Shared& shared, nlohmann::json status) {
  TopView view;
  std::string error;
  for (;;) {
    {
      std::lock_guard lock(shared.mu);
      if (shared.status) status = std::move(*std::exchange(shared.status, std::nullopt));
      for (auto& e : shared.events) AddTopEvent(view, e);
      shared.events.clear();
      error = shared.error;
    }
    auto [width, height] = Screen::Size();
    std::string frame = RenderTop(status, view, NowSeconds(), width, height - (error.empty() ? 0 : 1));
    if (!error.empty()) frame += State("failed") + ": " + error + "\n";
    Screen::Draw(frame);
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {shared.wake[0], POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char key = 0;
      if (::read(STDIN_FILENO, &key, 1) <= 0 || key == 'q' || key == 'Q' || key == 3) break;
    }
    if (fds[1].revents & POLLIN) {
      char drain[64];
      (void)!::read(shared.wake[0], drain, sizeof drain);
    }
  }
}

}  // namespace

int RunTop(const std::string& socket) {
  auto first = CallControl(socket, "GET", protocol::kStatusPath);
  if (!first.error.empty() || first.status != 200) {
    std::cerr << "batonctl: "
              << (first.error.empty() ? "batond answered HTTP " + std::to_string(first.status) : first.error) << "\n";
    return 3;
  }
  // Shared outlives the stream threads, which are left blocked in their reads at exit.
  auto* shared = new Shared;
  if (::pipe(shared->wake) != 0) return 3;
  // Each stream is opened again when it ends (batond replaced its program, or restarted).
  auto stream = [shared, socket](const char* target, bool status) {
    for (;;) {
      auto r = CallControl(socket, "GET", target, "", [shared, status](const nlohmann::json& line) {
        std::lock_guard lock(shared->mu);
        if (status)
          shared->status = line;
        else
          shared->events.push_back(line);
        shared->error.clear();
        shared->Wake();
      });
      {
        std::lock_guard lock(shared->mu);
        shared->error = r.error.empty() ? "batond closed the stream; reconnecting" : r.error + "; reconnecting";
        shared->Wake();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  };
  std::thread(stream, "/v1/status?follow=1&interval=1s", true).detach();
  std::thread(stream, protocol::kEventsPath, false).detach();

  {
    Screen screen;
    DrawUntilQuit(*shared, first.body);
  }
  // The stream threads are still blocked in their reads: leave without waiting for them.
  std::cout.flush();
  std::_Exit(0);
}

}  // namespace baton::ctl
