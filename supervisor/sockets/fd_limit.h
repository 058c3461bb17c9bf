// How close batond is to its open-file limit, judged from a descriptor it was just given.
// The kernel hands out the lowest free number, so a new descriptor numbered N means every
// number below N is taken: at most limit - N - 1 remain.
#pragma once

#include <sys/resource.h>

namespace baton {

// Descriptors the control server leaves free: for a handover's pipes, pidfds and sockets,
// and for the sanitizer runtime, which needs a pipe(2) to check memory (without one it
// reports valid objects as invalid). Control clients beyond that are answered 503.
inline constexpr int kControlFdReserve = 32;

// Whether `fd`, just opened, leaves fewer than `reserve` descriptors free. The limit is read
// each time: an operator may lower it on the running batond (prlimit).
inline bool NearFdLimit(int fd, int reserve) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return false;
  return static_cast<rlim_t>(fd) + static_cast<rlim_t>(reserve) >= limit.rlim_cur;
}

}  // namespace baton
