// Replacing batond's own program while keeping its pid, its children and every socket
// (self-upgrade): the state travels in a sealed memfd, the descriptors it names are kept
// open across exec, and the signals batond handles are held back until the new program
// has its handlers in place.
#pragma once

#include <string>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

// Writes `state` into a memfd sealed against any change, not close-on-exec.
Result<int> WriteSealedState(const std::string& state);
// Reads a state written by WriteSealedState; the fd stays open (a fallback needs it).
Result<std::string> ReadSealedState(int fd);
// An fd (not close-on-exec) for the program now running, to fall back to.
Result<int> OpenOwnProgram();
// Clears or sets close-on-exec on each of `fds`; fails on the first one that is not open.
Status SetKeptAcrossExec(const std::vector<int>& fds, bool keep);
// SetKeptAcrossExec(fds, false) in a few calls, for the thousands the new program takes:
// one poll finds each open, close_range marks each run of consecutive ones.
Status CloseCarriedAtExec(const std::vector<int>& fds);
// Replaces the program: `program_fd` when not -1, else `path`. Signals batond handles are
// blocked first; on failure they are unblocked again and the error returned.
Status ExecProgram(const std::string& path, int program_fd, const std::vector<std::string>& argv);
// Unblocks what ExecProgram blocked; the new program calls it once its handlers are set.
void UnblockHandledSignals();
// Whether `pid` is a child of this process (reaped or not yet, never a stranger).
bool IsOwnChild(int pid);

}  // namespace baton
