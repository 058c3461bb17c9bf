#include "supervisor/upgrade/reexec.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <string>

#include "supervisor/base/unique_fd.h"

extern char** environ;

namespace baton {

namespace {

sigset_t HandledSignals() {
  sigset_t set;
  ::sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1}) ::sigaddset(&set, sig);
  return set;
}

}  // namespace

Result<int> WriteSealedState(const std::string& state) {
  UniqueFd fd(::memfd_create("batond-state", MFD_ALLOW_SEALING));
  if (!fd) return Status::FromErrno("memfd_create", errno);
  for (size_t done = 0; done < state.size();) {
    ssize_t n = ::write(fd.get(), state.data() + done, state.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write state", errno);
    done += static_cast<size_t>(n);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return Status::FromErrno("seal state", errno);
  return fd.ReleaseOwnership();
}

Result<std::string> ReadSealedState(int fd) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return Status::FromErrno("state fd " + std::to_string(fd), errno);
  if (!(seals & F_SEAL_WRITE)) return Status::InvalidArgument("state fd " + std::to_string(fd) + " is not sealed");
  // WriteSealedState seals its size too. Read straight into a string of that size (half a
  // megabyte with 1,000 workers, copied at each growth before); a shorter file is refused.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno("state fd " + std::to_string(fd), errno);
  std::string out(static_cast<size_t>(st.st_size), '\0');
  for (size_t at = 0; at < out.size();) {
    ssize_t n = ::pread(fd, out.data() + at, out.size() - at, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read state", errno);
    if (n == 0) return Status::InvalidArgument("the state ended before its size");
    at += static_cast<size_t>(n);
  }
  return out;
}

Result<int> OpenOwnProgram() {
  int fd = ::open("/proc/self/exe", O_RDONLY);  // the running file, even if replaced on disk since
  if (fd < 0) return Status::FromErrno("open /proc/self/exe", errno);
  return fd;
}

Status SetKeptAcrossExec(const std::vector<int>& fds, bool keep) {
  // FD_CLOEXEC is the only descriptor flag: one call per descriptor, which also fails on
  // one that is not open (thousands with 1,000 workers).
  for (int fd : fds)
    if (::fcntl(fd, F_SETFD, keep ? 0 : FD_CLOEXEC) != 0)
      return Status::FromErrno("descriptor " + std::to_string(fd), errno);
  return Status::Ok();
}

Status CloseCarriedAtExec(const std::vector<int>& fds) {
  // One poll says which are open (POLLNVAL for those that are not), and close_range sets
  // the flag on many at once: a call for each took a millisecond with 1,000 workers.
  std::vector<pollfd> polled;
  polled.reserve(fds.size());
  for (int fd : fds) {
    if (fd < 0) return Status::InvalidArgument("descriptor " + std::to_string(fd));
    polled.push_back(pollfd{fd, 0, 0});
  }
  if (::poll(polled.data(), polled.size(), 0) < 0) return Status::FromErrno("check the descriptors", errno);
  for (const pollfd& p : polled)
    if (p.revents & POLLNVAL) return Status::FromErrno("descriptor " + std::to_string(p.fd), EBADF);
  // Runs of consecutive descriptors, one call each: a descriptor between them is not the
  // state's (one batond inherited, say), and keeps its flag.
  std::vector<int> sorted = fds;
  std::sort(sorted.begin(), sorted.end());
  for (size_t first = 0, last = 0; first < sorted.size(); first = last + 1) {
    for (last = first; last + 1 < sorted.size() && sorted[last + 1] <= sorted[last] + 1;) ++last;
    if (::syscall(SYS_close_range, sorted[first], sorted[last], CLOSE_RANGE_CLOEXEC) != 0)
      return SetKeptAcrossExec(fds, false);  // a kernel before 5.11
  }
  return Status::Ok();
}

Status ExecProgram(const std::string& path, int program_fd, const std::vector<std::string>& argv) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  sigset_t handled = HandledSignals();
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  if (program_fd >= 0)
    ::fexecve(program_fd, args.data(), environ);
  else
    ::execv(path.c_str(), args.data());
  int err = errno;
  ::sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  return Status::FromErrno("execute " + (program_fd >= 0 ? "the previous program" : path), err);
}

void UnblockHandledSignals() {
  sigset_t handled = HandledSignals();
  ::sigprocmask(SIG_UNBLOCK, &handled, nullptr);
}

bool IsOwnChild(int pid) {
  if (pid <= 0) return false;
  siginfo_t info{};
  // WNOWAIT: look without reaping. ECHILD means it is no child of ours.
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

}  // namespace baton
