#include "supervisor/process/child_setup.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <pwd.h>
#include <sanitizer/asan_interface.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "supervisor/base/number.h"
#include "supervisor/base/system_names.h"

namespace baton {

void ChildMain(const ChildSetup& c) {
  int report_w = c.report_w;
  auto fail = [&](int stage) {
    ExecFailure f{stage, errno};
    (void)!::write(report_w, &f, sizeof f);
    ::_exit(127);
  };
  // The descriptor table is still batond's (CLONE_FILES): take a copy of the part below
  // keep_below, where everything this child needs is, before changing any of it.
  if (::syscall(SYS_close_range, c.keep_below, ~0U, CLOSE_RANGE_UNSHARE) != 0 && ::unshare(CLONE_FILES) != 0) fail(3);
  ::setpgid(0, 0);
  // Every signal arrives blocked (SpawnChild): batond's handlers must not run here, on its
  // memory. Back to the defaults first, then unblocked.
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Move everything we still need above the listener range, then place the listeners.
  int above = 3 + c.nfds;
  report_w = ::fcntl(report_w, F_DUPFD_CLOEXEC, above);
  if (report_w < 0) ::_exit(127);
  int moved[256];
  for (int i = 0; i < c.nfds; ++i)
    if ((moved[i] = ::fcntl(c.fds[i], F_DUPFD_CLOEXEC, above)) < 0) fail(3);
  if (::dup2(c.devnull, 0) < 0 || ::dup2(c.out_w, 1) < 0 || ::dup2(c.err_w, 2) < 0) fail(3);
  for (int i = 0; i < c.nfds; ++i)
    if (::dup2(moved[i], 3 + i) < 0) fail(3);  // dup2 clears CLOEXEC on the target
  // Everything else closes at exec; report_w stays usable until then.
  if (::syscall(SYS_close_range, above, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = above; fd < 65536; ++fd)
      if (fd != report_w) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (!c.own_pid_digits.empty()) {
    char digits[16];
    int n = 0;
    for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
    for (char* value : c.own_pid_digits) {
      for (int i = 0; i < n; ++i) value[i] = digits[n - 1 - i];
      value[n] = '\0';
    }
  }
  if (c.fd_limit) ::setrlimit(RLIMIT_NOFILE, c.fd_limit);
  for (const auto& [resource, limit] : c.limits)
    if (::setrlimit(resource, &limit) != 0) fail(5);
  if (c.umask >= 0) ::umask(static_cast<mode_t>(c.umask));
  if (c.set_identity) {
    // Raw system calls: glibc's wrappers would also try to change batond's other threads.
    if (::syscall(SYS_setgroups, c.groups.size(), c.groups.data()) != 0 || ::syscall(SYS_setgid, c.gid) != 0 ||
        ::syscall(SYS_setuid, c.uid) != 0)
      fail(4);
  }
  // A killed batond must not leave workers serving unsupervised: they get their stop
  // signal and drain. Set after the identity change, which clears it; the parent may
  // have died before this line: then act at once.
  if (c.death_signal > 0) {
    ::prctl(PR_SET_PDEATHSIG, c.death_signal);
    if (::getppid() != c.parent) ::kill(::getpid(), c.death_signal);
  }
  if (c.cwd && ::chdir(c.cwd) != 0) fail(1);
  ::execve(c.path, c.argv, c.envp);
  fail(2);
  ::_exit(127);
}

namespace {

int ChildEntry(void* setup) {
  ChildMain(*static_cast<const ChildSetup*>(setup));
  return 127;  // not reached: ChildMain execs or exits
}

}  // namespace

Result<pid_t> SpawnChild(const ChildSetup& setup) {
  // The child runs on a stack of its own until it execs; batond waits meanwhile, so one
  // stack per thread serves every spawn. Mapped once, never unmapped.
  constexpr size_t kStackBytes = 256 * 1024;
  thread_local void* stack = nullptr;
  if (!stack) {
    void* mapped = ::mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapped == MAP_FAILED) return Status::FromErrno("map the spawn stack", errno);
    stack = mapped;
  }
  // The previous child's frames never returned: under AddressSanitizer their redzones are
  // still marked in its shadow memory, and would read as overflows in this child.
  ASAN_UNPOISON_MEMORY_REGION(stack, kStackBytes);
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(ChildEntry, static_cast<char*>(stack) + kStackBytes,
                      CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, const_cast<ChildSetup*>(&setup));
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return Status::FromErrno("clone", err);
  return pid;
}

Status ChildFdSlots::Reserve(size_t count) {
  if (!devnull_) {
    int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open /dev/null", errno);
    devnull_.Reset(fd);
    // Above 0, 1 and 2: the child puts its own there first.
    if (fd < 3) devnull_.Reset(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!devnull_) return Status::FromErrno("reserve a descriptor for children", errno);
  }
  while (slots_.size() < count) {
    UniqueFd slot(::fcntl(devnull_.get(), F_DUPFD_CLOEXEC, 3));
    if (!slot) return Status::FromErrno("reserve a descriptor for children", errno);
    slots_.push_back(std::move(slot));
  }
  return Status::Ok();
}

Result<std::vector<int>> ChildFdSlots::Fill(const std::vector<int>& fds) {
  if (Status s = Reserve(fds.size()); !s.ok()) return s;
  std::vector<int> placed;
  for (int fd : fds) {
    int slot = slots_[filled_].get();
    if (::dup3(fd, slot, O_CLOEXEC) < 0) {
      Clear();
      return Status::FromErrno("copy a descriptor for a child", errno);
    }
    ++filled_;
    placed.push_back(slot);
  }
  return placed;
}

void ChildFdSlots::Clear() {
  for (; filled_ > 0; --filled_) ::dup3(devnull_.get(), slots_[filled_ - 1].get(), O_CLOEXEC);
}

int ChildFdSlots::end() const {
  int top = devnull_.get();
  for (size_t i = 0; i < filled_; ++i) top = std::max(top, slots_[i].get());
  return top + 1;
}

Status ResolveIdentity(const LaunchSpec& spec, ChildSetup* setup, std::vector<std::string>* env_strings) {
  if (spec.user.empty() && spec.group.empty() && spec.supplementary_groups.empty()) return Status::Ok();
  if (::geteuid() != 0)
    return Status::FailedPrecondition("user, group and supplementary_groups need batond to run as root");
  setup->set_identity = true;
  setup->uid = 0;
  setup->gid = 0;
  if (!spec.user.empty()) {
    std::vector<char> buf(16384);
    passwd pw{}, *found = nullptr;
    std::optional<uid_t> numeric;
    if (IsNumericId(spec.user)) {
      auto uid = ParseInteger<uid_t>(spec.user, "user", 0, kMaxId);
      if (!uid.ok()) return uid.status();
      numeric = *uid;
    }
    int rc = numeric ? ::getpwuid_r(*numeric, &pw, buf.data(), buf.size(), &found)
                     : ::getpwnam_r(spec.user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0 || (!found && !IsNumericId(spec.user)))
      return Status::InvalidArgument("no user named '" + spec.user + "'");
    if (found) {
      setup->uid = found->pw_uid;
      setup->gid = found->pw_gid;
      int n = 64;
      std::vector<gid_t> groups(static_cast<size_t>(n));
      if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<size_t>(n));
        ::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n);
      }
      groups.resize(static_cast<size_t>(n));
      setup->groups = std::move(groups);
      auto has = [&](const char* key) {
        for (const auto& e : *env_strings)
          if (e.rfind(std::string(key) + "=", 0) == 0) return true;
        return false;
      };
      for (auto [key, value] : {std::pair<const char*, std::string>{"HOME", found->pw_dir},
                                {"USER", found->pw_name},
                                {"LOGNAME", found->pw_name}})
        if (!has(key)) env_strings->push_back(std::string(key) + "=" + value);
    } else {
      setup->uid = *numeric;  // a uid with no passwd entry
      setup->gid = static_cast<gid_t>(setup->uid);
    }
  }
  if (!spec.group.empty()) {
    auto gid = LookupGroup(spec.group, "group");
    if (!gid.ok()) return gid.status();
    setup->gid = *gid;
  }
  for (const auto& name : spec.supplementary_groups) {
    auto gid = LookupGroup(name, "supplementary_groups");
    if (!gid.ok()) return gid.status();
    setup->groups.push_back(*gid);
  }
  return Status::Ok();
}

Status AwaitExec(int report_r, pid_t pid, const LaunchSpec& spec, const std::string& path) {
  ExecFailure failure{};
  ssize_t n;
  do n = ::read(report_r, &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  if (n != sizeof failure) return Status::Ok();
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string what = failure.stage == 1   ? "change directory to '" + spec.cwd + "'"
                     : failure.stage == 2 ? "execute " + path
                     : failure.stage == 4 ? "switch to user '" + spec.user + "'"
                     : failure.stage == 5 ? "set resource limits for " + path
                                          : "set up fds for " + path;
  return Status::FromErrno(what, failure.err);
}

}  // namespace baton
