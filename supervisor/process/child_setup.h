// What a child does between spawn and exec, all prepared before the spawn: the descriptors it
// gets, its limits, identity and death signal; and how it reports a failure to exec.
// Internal to process/ (posix_launcher.cc).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/process/launcher.h"

namespace baton {

struct ExecFailure {
  int stage;  // 1: chdir, 2: exec, 3: fd setup, 4: user and groups, 5: resource limits
  int err;
};

// Everything the child does between spawn and exec, prepared before the spawn.
struct ChildSetup {
  const char* path;
  char* const* argv;
  char* const* envp;
  // Values to fill in with the child's pid (LISTEN_PID=, WATCHDOG_PID=), each with room
  // for 16 digits.
  std::vector<char*> own_pid_digits;
  const char* cwd;  // or null
  int devnull, out_w, err_w, report_w;
  const int* fds;
  int nfds;
  // devnull, out_w, err_w, report_w and fds are all below this number
  // (ChildFdSlots::end()): the child copies only batond's descriptors below it.
  int keep_below = 0;
  const rlimit* fd_limit = nullptr;            // best effort: the limit batond started with
  std::vector<std::pair<int, rlimit>> limits;  // the service's own: must hold
  int umask = -1;
  bool set_identity = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int death_signal = 0;
  pid_t parent = 0;
};

// Runs in the child between spawn and exec: only async-signal-safe calls, and no writes
// to batond's memory (shared until the exec) but the pid digits prepared for it. Does not
// return: it execs, or writes an ExecFailure to report_w and exits 127. (Not declared
// [[noreturn]]: AddressSanitizer would then treat the call as leaving the stack, which it
// does not know, with a warning in batond's log.)
void ChildMain(const ChildSetup& c);

// Starts a child running ChildMain(setup) with clone(CLONE_VM | CLONE_VFORK), as
// posix_spawn does: batond's memory is not copied for a child that only execs (no page
// tables to copy, none to tear down at the exec, no copy-on-write faults in batond
// afterwards). Returns once the child has exec'd or exited. The descriptor table is not
// copied either (CLONE_FILES): the child's first step copies the part below
// setup.keep_below and leaves batond's.
Result<pid_t> SpawnChild(const ChildSetup& setup);

// Descriptors batond keeps at low numbers for what a child needs (its output pipes, exec
// report pipe, listeners), so that the child copies only batond's descriptors below them.
// A child that copied all of them would close them again at its exec: with 1,000 workers,
// 3,000 descriptors per spawn, an eighth of all CPU time during a cold start.
class ChildFdSlots {
 public:
  // Reserves /dev/null and `count` slots, if not yet done. Early, while the lowest free
  // numbers are low; Fill reserves more when a child needs more.
  Status Reserve(size_t count);
  // Copies each of `fds` into a slot of its own, close-on-exec; returns the slots' numbers
  // in the same order.
  Result<std::vector<int>> Fill(const std::vector<int>& fds);
  // Drops the copies: each slot holds /dev/null again. Call once the child has exec'd.
  void Clear();
  // /dev/null, for the child's stdin: reserved with the slots, below end().
  int devnull() const { return devnull_.get(); }
  // One above the highest slot in use.
  int end() const;

 private:
  UniqueFd devnull_;
  std::vector<UniqueFd> slots_;
  size_t filled_ = 0;
};

// Fills in who the child runs as, and HOME, USER and LOGNAME when env lacks them.
Status ResolveIdentity(const LaunchSpec& spec, ChildSetup* setup, std::vector<std::string>* env_strings);

// Reads the report pipe (closed at exec): OK once the program runs; else the child is
// reaped and the error says which step failed.
Status AwaitExec(int report_r, pid_t pid, const LaunchSpec& spec, const std::string& path);

}  // namespace baton
