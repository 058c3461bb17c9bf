// The process seam. The handover logic starts workers and probes through a ProcessLauncher
// and learns of their output and exit through ProcessEvents, so its tests use a fake
// launcher and never fork. The real one (posix_launcher) forks on the single event loop
// and watches each child's pidfd.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

struct ExitInfo {
  int code = 0;    // exit status when signal == 0
  int signal = 0;  // terminating signal, or 0 for a normal exit
  bool success() const { return signal == 0 && code == 0; }
  // "exited with status 3" / "killed by SIGKILL"
  std::string Describe() const;
};

enum class OutputStream { kStdout, kStderr };

struct LaunchSpec {
  std::string tag;                                       // how its log lines are tagged, e.g. "web v2"
  std::vector<std::string> argv;                         // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::pair<std::string, std::string>> env;  // the complete environment
  std::string cwd;                                       // empty: inherit
  std::vector<int> fds;                                  // placed at fds 3, 4, ... in the child
  std::vector<std::string> own_pid_env;                  // variables set to the child's own pid (LISTEN_PID)
  bool log_output = true;                                // log output lines (probes set false)
  int parent_death_signal = 0;                           // sent to the child if batond dies (0: none)
  // Least privilege: run as `user` (name or uid; batond must be root) in `group` (default:
  // the user's primary group) with the user's groups plus `supplementary_groups`; HOME,
  // USER and LOGNAME are set unless env has them.
  std::string user, group;
  std::vector<std::string> supplementary_groups;
  std::optional<unsigned> umask;
  std::vector<std::pair<int, uint64_t>> limits;  // RLIMIT_* -> soft and hard limit (~0: unlimited)
};

struct ProcessEvents {
  std::function<void(OutputStream, std::string_view line)> on_line;
  std::function<void(const ExitInfo&)> on_exit;  // called once; the process is reaped
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Starts a process in its own process group and returns its pid. Fails without leaving
  // a process behind when the program cannot be found or executed.
  virtual Result<int> Launch(const LaunchSpec& spec, ProcessEvents events) = 0;
  // Checks, without starting anything, that spec.argv[0] can be executed.
  virtual Status CheckExecutable(const LaunchSpec& spec) const = 0;
  // Sends a signal to the process group led by pid (the worker and its children).
  virtual void SignalGroup(int pid, int sig) = 0;
  // Sends a signal to pid alone.
  virtual void SignalMain(int pid, int sig) = 0;
  // After batond replaced its own program (self-upgrade): gives a child it took over from
  // the previous program its new callbacks. Fails when no such child is known.
  virtual Status Reattach(int pid, ProcessEvents events) = 0;
};

}  // namespace baton
