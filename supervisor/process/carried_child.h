// What a self-upgrade carries of one child (PosixLauncher::Export, Import): its pid, its
// descriptors (-1 for a pipe already closed) and the output lines it had not finished.
#pragma once

#include <string>

namespace baton {

struct CarriedChild {
  int pid = 0;
  int pidfd = -1, stdout_fd = -1, stderr_fd = -1;
  std::string stdout_partial, stderr_partial;
  std::string tag;
};

}  // namespace baton
