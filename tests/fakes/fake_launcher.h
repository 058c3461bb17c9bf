// A launcher that records what would run. Tests make processes print and exit.
#pragma once

#include <map>
#include <set>
#include <vector>

#include "supervisor/process/launcher.h"

namespace baton::testing {

class FakeLauncher : public ProcessLauncher {
 public:
  struct Launched {
    int pid;
    LaunchSpec spec;
  };

  Result<int> Launch(const LaunchSpec& spec, ProcessEvents events) override {
    if (fail_launches) return Status::FromErrno("fork", EAGAIN);
    if (fail_next_launches > 0) {
      --fail_next_launches;
      return Status::FromErrno("fork", EAGAIN);
    }
    int pid = next_pid_++;
    launched.push_back({pid, spec});
    running_[pid] = std::move(events);
    return pid;
  }
  Status CheckExecutable(const LaunchSpec& spec) const override {
    if (missing.count(spec.argv[0])) return Status::InvalidArgument("executable not found: " + spec.argv[0]);
    return Status::Ok();
  }
  void SignalGroup(int pid, int sig) override { signals.emplace_back(pid, sig); }
  void SignalMain(int pid, int sig) override { main_signals.emplace_back(pid, sig); }
  Status Reattach(int pid, ProcessEvents events) override {
    if (!carried.erase(pid)) return Status::NotFound("no carried process " + std::to_string(pid));
    running_[pid] = std::move(events);
    return Status::Ok();
  }

  // The process writes a line to stderr.
  void Stderr(int pid, const std::string& line) {
    if (running_.count(pid)) running_[pid].on_line(OutputStream::kStderr, line);
  }
  // The process exits (as reaped by the real launcher).
  void Exit(int pid, ExitInfo info = {}) {
    auto it = running_.find(pid);
    if (it == running_.end()) return;
    auto events = std::move(it->second);
    running_.erase(it);
    events.on_exit(info);
  }
  bool IsRunning(int pid) const { return running_.count(pid) > 0; }
  std::vector<int> RunningPids() const {
    std::vector<int> pids;
    for (const auto& [pid, e] : running_) pids.push_back(pid);
    return pids;
  }
  bool Signalled(int pid, int sig) const {
    for (const auto& [p, s] : signals)
      if (p == pid && s == sig) return true;
    return false;
  }
  bool SignalledAny(int pid) const {
    for (const auto& [p, s] : signals)
      if (p == pid) return true;
    return false;
  }

  std::vector<Launched> launched;
  std::vector<std::pair<int, int>> signals;
  std::vector<std::pair<int, int>> main_signals;  // SignalMain: to the process alone
  std::set<std::string> missing;
  std::set<int> carried;  // processes Reattach may claim
  bool fail_launches = false;
  int fail_next_launches = 0;  // this many launches fail, then they succeed again

 private:
  int next_pid_ = 1000;
  std::map<int, ProcessEvents> running_;
};

}  // namespace baton::testing
