// ProcessLauncher over clone/exec and pidfd on an asio io_context. Each child runs in its
// own process group with exactly fds 0, 1, 2 and LaunchSpec::fds (at 3, 4, ...) open; its
// stdout and stderr are read line by line; its exit is observed by polling its pidfd. All
// three are watched in one WatchSet, which a self-upgrade carries across the exec.
// Not thread-safe: use from the loop thread only.
#pragma once

#include <sys/resource.h>

#include <map>
#include <set>
#include <optional>
#include <memory>
#include <vector>

#include "supervisor/base/unique_fd.h"
#include "supervisor/process/carried_child.h"
#include "supervisor/process/child_setup.h"
#include "supervisor/process/launcher.h"

namespace boost::asio {
class io_context;
}

namespace baton {

class ChildWatch;
class WatchSet;

class PosixLauncher : public ProcessLauncher {
 public:
  explicit PosixLauncher(boost::asio::io_context& io);
  ~PosixLauncher() override;
  Result<int> Launch(const LaunchSpec& spec, ProcessEvents events) override;
  Status CheckExecutable(const LaunchSpec& spec) const override;
  void SignalGroup(int pid, int sig) override;
  void SignalMain(int pid, int sig) override;
  Status Reattach(int pid, ProcessEvents events) override;
  size_t running() const { return children_.size(); }
  bool Tracks(int pid) const { return children_.count(pid) > 0; }
  // Self-upgrade. Describes every child (pid, pidfd, output pipes, unread partial lines)
  // and adds the descriptors that must stay open across exec to `keep`, the watch set's
  // (watch_set_fd) too.
  std::vector<CarriedChild> Export(std::vector<int>* keep) const;
  int watch_set_fd() const;
  // Takes over the children Export described in the previous program; each waits for
  // Reattach. With the previous program's watch set (`carried_set`, else -1) their
  // descriptors are watched as they were, without a system call each.
  Status Import(const std::vector<CarriedChild>& children, int carried_set);
  // Children Import took over that nobody reattached: their process groups are killed.
  void KillUnclaimed();
  // The RLIMIT_NOFILE children get, when batond raised its own.
  void SetChildFdLimit(rlimit limit) { child_fd_limit_ = limit; }
  const std::optional<rlimit>& child_fd_limit() const { return child_fd_limit_; }

 private:
  Result<int> Watch(int pid, UniqueFd out_r, UniqueFd err_r, const LaunchSpec& spec, ProcessEvents events);

  std::unique_ptr<WatchSet> watch_set_;  // outlives the children, which it holds
  ChildFdSlots child_fd_slots_;
  std::optional<rlimit> child_fd_limit_;
  std::map<int, std::shared_ptr<ChildWatch>> children_;  // until reaped
  std::set<int> unclaimed_;                              // imported, awaiting Reattach
};

// Resolves argv[0] against PATH (from env, else batond's), or against `cwd` when it is a
// relative path; empty if not executable.
std::string ResolveExecutable(const std::string& program, const std::vector<std::pair<std::string, std::string>>& env,
                              const std::string& cwd);

}  // namespace baton
