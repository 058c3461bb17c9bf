#include "supervisor/process/posix_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"
#include "supervisor/base/system_names.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/config/config.h"
#include "supervisor/process/child_setup.h"
#include "supervisor/process/child_watch.h"
#include "supervisor/process/watch_set.h"

namespace baton {

namespace asio = boost::asio;

std::string ExitInfo::Describe() const {
  if (signal) return "killed by " + SignalName(signal);
  return "exited with status " + std::to_string(code);
}

std::string ResolveExecutable(const std::string& program, const std::vector<std::pair<std::string, std::string>>& env,
                              const std::string& cwd) {
  if (program.empty()) return "";
  if (program.find('/') != std::string::npos) {
    // A relative path is relative to the worker's cwd: the child changes directory first.
    std::string where = program[0] != '/' && !cwd.empty() ? cwd + "/" + program : program;
    return ::access(where.c_str(), X_OK) == 0 ? program : "";
  }
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  if (const char* p = ::getenv("PATH")) path = p;
  for (const auto& [k, v] : env)
    if (k == "PATH") path = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

PosixLauncher::PosixLauncher(asio::io_context& io) : watch_set_(std::make_unique<WatchSet>(io)) {
  // The usual child's: output, error and exec report pipes and a few listeners. The same
  // count in every program, so that a self-upgrade keeps the number of open descriptors.
  // On failure, Launch says why.
  (void)child_fd_slots_.Reserve(8);
}

PosixLauncher::~PosixLauncher() {
  for (auto& [pid, watch] : children_) watch->Shutdown();
}

Result<int> PosixLauncher::Launch(const LaunchSpec& spec, ProcessEvents events) {
  if (spec.argv.empty()) return Status::InvalidArgument("empty command");
  if (spec.fds.size() > 200) return Status::InvalidArgument("too many descriptors to pass (listeners and FD store)");
  std::string path = ResolveExecutable(spec.argv[0], spec.env, spec.cwd);
  if (path.empty()) return Status::NotFound("executable not found or not executable: " + spec.argv[0]);

  // Everything the child needs is allocated before the spawn.
  ChildSetup setup{};
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  if (Status s = ResolveIdentity(spec, &setup, &env_strings); !s.ok()) return s;
  for (const auto& name : spec.own_pid_env) env_strings.push_back(name + "=" + std::string(16, '\0'));
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = spec.argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  if (child_fd_limit_) setup.fd_limit = &*child_fd_limit_;
  for (const auto& [resource, value] : spec.limits) {
    rlim_t v = value == ~uint64_t{0} ? RLIM_INFINITY : static_cast<rlim_t>(value);
    setup.limits.emplace_back(resource, rlimit{v, v});
  }

  int out[2], err[2], report[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Status::FromErrno("create stdout pipe", errno);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return Status::FromErrno("create stderr pipe", errno);
  UniqueFd err_r(err[0]), err_w(err[1]);
  if (::pipe2(report, O_CLOEXEC) != 0) return Status::FromErrno("create exec report pipe", errno);
  UniqueFd report_r(report[0]), report_w(report[1]);

  std::vector<int> passed = {out_w.get(), err_w.get(), report_w.get()};
  passed.insert(passed.end(), spec.fds.begin(), spec.fds.end());
  auto slots = child_fd_slots_.Fill(passed);
  if (!slots.ok()) return slots.status();
  setup.path = path.c_str();
  setup.argv = argv.data();
  setup.envp = envp.data();
  for (size_t i = env_strings.size() - spec.own_pid_env.size(); i < env_strings.size(); ++i)
    setup.own_pid_digits.push_back(env_strings[i].data() + env_strings[i].find('=') + 1);
  setup.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  setup.devnull = child_fd_slots_.devnull();
  setup.out_w = (*slots)[0];
  setup.err_w = (*slots)[1];
  setup.report_w = (*slots)[2];
  setup.fds = slots->data() + 3;
  setup.nfds = static_cast<int>(spec.fds.size());
  setup.keep_below = child_fd_slots_.end();
  setup.umask = spec.umask ? static_cast<int>(*spec.umask) : -1;
  setup.death_signal = spec.parent_death_signal;
  setup.parent = ::getpid();
  auto spawned = SpawnChild(setup);
  child_fd_slots_.Clear();  // the report pipe reads end-of-file once the child's copy closes
  if (!spawned.ok()) return spawned.status();
  pid_t pid = *spawned;
  ::setpgid(pid, pid);  // also in the parent, so signals to the group work at once
  out_w.Reset();
  err_w.Reset();
  report_w.Reset();

  if (Status s = AwaitExec(report_r.get(), pid, spec, path); !s.ok()) return s;

  return Watch(pid, std::move(out_r), std::move(err_r), spec, std::move(events));
}

// The program runs: its exit through a pidfd, its output through the pipes.
Result<int> PosixLauncher::Watch(int pid, UniqueFd out_r, UniqueFd err_r, const LaunchSpec& spec,
                                 ProcessEvents events) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // close-on-exec, always
  if (pidfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Status::FromErrno("open pidfd", e);
  }
  auto watch = std::make_shared<ChildWatch>(*watch_set_, pid, pidfd, out_r.ReleaseOwnership(), err_r.ReleaseOwnership(),
                                            spec.tag, spec.log_output, std::move(events),
                                            [this](int reaped) { children_.erase(reaped); });
  if (Status s = watch->Start(false); !s.ok()) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return s;
  }
  children_[pid] = watch;
  return static_cast<int>(pid);
}

Status PosixLauncher::CheckExecutable(const LaunchSpec& spec) const {
  if (spec.argv.empty() || ResolveExecutable(spec.argv[0], spec.env, spec.cwd).empty())
    return Status::InvalidArgument("executable not found or not executable: " +
                                   (spec.argv.empty() ? std::string("(empty)") : spec.argv[0]));
  ChildSetup setup;
  std::vector<std::string> env;
  return ResolveIdentity(spec, &setup, &env);
}

void PosixLauncher::SignalGroup(int pid, int sig) {
  if (children_.count(pid)) ::kill(-pid, sig);
}

void PosixLauncher::SignalMain(int pid, int sig) {
  if (children_.count(pid)) ::kill(pid, sig);
}

std::vector<CarriedChild> PosixLauncher::Export(std::vector<int>* keep) const {
  std::vector<CarriedChild> out;
  out.reserve(children_.size());
  for (const auto& [pid, watch] : children_) out.push_back(watch->Export(keep));
  if (watch_set_->ok()) keep->push_back(watch_set_->fd());
  return out;
}

int PosixLauncher::watch_set_fd() const { return watch_set_->fd(); }

Status PosixLauncher::Import(const std::vector<CarriedChild>& children, int carried_set) {
  bool adopt = false;
  if (carried_set >= 0) {
    Status s = watch_set_->TakeOver(carried_set);
    if (!s.ok()) spdlog::warn("the children's carried epoll set: {}; watching them anew", s.message());
    adopt = s.ok();
  }
  for (const auto& c : children) {
    if (c.pid <= 0 || c.pidfd < 0) return Status::InvalidArgument("child " + std::to_string(c.pid) + ": no pidfd");
    auto watch = std::make_shared<ChildWatch>(*watch_set_, c.pid, c.pidfd, c.stdout_fd, c.stderr_fd, c.tag, true,
                                              ProcessEvents{}, [this](int reaped) {
                                                children_.erase(reaped);
                                                unclaimed_.erase(reaped);
                                              });
    watch->SetPartialLines(c.stdout_partial, c.stderr_partial);
    if (Status s = watch->Start(adopt); !s.ok()) {
      watch->Release();  // a resume that fails leaves every carried descriptor open
      return s;
    }
    children_[c.pid] = watch;
    unclaimed_.insert(c.pid);
  }
  return Status::Ok();
}

Status PosixLauncher::Reattach(int pid, ProcessEvents events) {
  auto it = children_.find(pid);
  if (it == children_.end() || !unclaimed_.erase(pid))
    return Status::NotFound("no child " + std::to_string(pid) + " to take over");
  it->second->SetEvents(std::move(events));
  return Status::Ok();
}

void PosixLauncher::KillUnclaimed() {
  for (int pid : unclaimed_) {
    spdlog::warn("pid {}: carried over by the previous program but claimed by no service; killing it", pid);
    ::kill(-pid, SIGKILL);
  }
  unclaimed_.clear();
}

}  // namespace baton
