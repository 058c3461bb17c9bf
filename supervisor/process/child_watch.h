// One child of the launcher, watched: its exit through its pidfd, its stdout and stderr
// read line by line from non-blocking pipes. The three sit in the launcher's WatchSet,
// which holds the watch (shared) while any of them is watched. Internal to process/.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/process/carried_child.h"
#include "supervisor/process/launcher.h"
#include "supervisor/process/watch_set.h"

namespace baton {

class ChildWatch : public WatchSet::Handler, public std::enable_shared_from_this<ChildWatch> {
 public:
  // Owns the descriptors (pipes' read ends; -1 for one already closed). `reaped` is called
  // with the pid once the child is reaped, before `events.on_exit`.
  ChildWatch(WatchSet& set, int pid, int pidfd, int out, int err, std::string tag, bool log_output,
             ProcessEvents events, std::function<void(int)> reaped);

  // Watches the three descriptors. `carried`: they are registered already, in a set the
  // previous program carried across a self-upgrade, pipes non-blocking; otherwise the
  // pipes are made non-blocking (the child's ends stay blocking, as programs expect) and
  // registered. On failure nothing is left registered.
  Status Start(bool carried);
  // Lets go of the descriptors without closing them: they stay the previous program's.
  void Release();
  // Stops watching and closes the descriptors.
  void Shutdown();

  // Self-upgrade: what the next program needs to carry on watching this child.
  CarriedChild Export(std::vector<int>* keep) const;
  void SetPartialLines(std::string out, std::string err);
  void SetEvents(ProcessEvents events) { events_ = std::move(events); }

  void OnReady(int fd) override;

 private:
  enum class PipeState { kOpen, kEnded };

  void Close(UniqueFd& fd);
  PipeState ReadAvailable(const UniqueFd& pipe, std::string& buf, OutputStream which, int rounds);
  void Consume(std::string& buf, std::string_view data, OutputStream which);
  void Flush(std::string& buf, OutputStream which);
  void EmitLine(std::string_view line, OutputStream which);
  void DrainNow(const UniqueFd& pipe, std::string& buf, OutputStream which);
  void OnExit();

  WatchSet& set_;
  int pid_;
  UniqueFd pidfd_, out_, err_;
  std::string tag_;
  bool log_output_;
  ProcessEvents events_;
  std::function<void(int)> reaped_;
  std::string out_buf_, err_buf_;  // partial lines
};

}  // namespace baton
