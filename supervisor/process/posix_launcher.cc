#include "supervisor/process/posix_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "supervisor/base/log.h"
#include "supervisor/base/number.h"
#include "supervisor/base/system_names.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/config/config.h"

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

// Watches one child: its pidfd and its two output pipes. Shared-owned so that async
// handlers keep it alive until they have run.
class ChildWatch : public std::enable_shared_from_this<ChildWatch> {
 public:
  ChildWatch(asio::io_context& io, int pid, int pidfd, int out, int err, std::string tag, bool log_output,
             ProcessEvents events, std::function<void(int)> reaped)
      : pid_(pid),
        pidfd_(io, pidfd),
        out_(io, out),
        err_(io, err),
        tag_(std::move(tag)),
        log_output_(log_output),
        events_(std::move(events)),
        reaped_(std::move(reaped)) {}

  void Start() {
    WaitExit();
    ReadMore(out_, out_buf_, OutputStream::kStdout);
    ReadMore(err_, err_buf_, OutputStream::kStderr);
  }

  // Self-upgrade: what the next program needs to carry on watching this child.
  nlohmann::json Export(std::vector<int>* keep) {
    auto fd = [&](asio::posix::stream_descriptor& d) {
      if (!d.is_open()) return -1;
      int n = d.native_handle();
      keep->push_back(n);
      return n;
    };
    return {{"pid", pid_},        {"pidfd", fd(pidfd_)},        {"stdout", fd(out_)},
            {"stderr", fd(err_)}, {"stdout_partial", out_buf_}, {"stderr_partial", err_buf_},
            {"tag", tag_}};
  }
  void SetPartialLines(std::string out, std::string err) {
    out_buf_ = std::move(out);
    err_buf_ = std::move(err);
  }
  void SetEvents(ProcessEvents events) { events_ = std::move(events); }

  void Shutdown() {
    boost::system::error_code ec;
    pidfd_.close(ec);
    out_.close(ec);
    err_.close(ec);
  }

 private:
  static constexpr size_t kMaxLine = 16 * 1024;

  void WaitExit() {
    pidfd_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& ec) {
                        if (!ec) self->OnExit();
                      });
  }

  void ReadMore(asio::posix::stream_descriptor& pipe, std::string& buf, OutputStream which) {
    if (!pipe.is_open()) return;
    pipe.async_read_some(asio::buffer(chunk_for(which)), [self = shared_from_this(), &pipe, &buf, which](
                                                             const boost::system::error_code& ec, size_t n) {
      if (ec) {
        self->Flush(buf, which);
        boost::system::error_code ignored;
        pipe.close(ignored);
        return;
      }
      self->Consume(buf, std::string_view(self->chunk_for(which).data(), n), which);
      self->ReadMore(pipe, buf, which);
    });
  }

  std::array<char, 4096>& chunk_for(OutputStream which) {
    return which == OutputStream::kStdout ? out_chunk_ : err_chunk_;
  }

  void Consume(std::string& buf, std::string_view data, OutputStream which) {
    buf.append(data);
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
      EmitLine(std::string_view(buf).substr(start, nl - start), which);
    buf.erase(0, start);
    while (buf.size() >= kMaxLine) {  // an endless line is cut rather than held forever
      EmitLine(std::string_view(buf).substr(0, kMaxLine), which);
      buf.erase(0, kMaxLine);
    }
  }

  void Flush(std::string& buf, OutputStream which) {
    if (!buf.empty()) EmitLine(buf, which);
    buf.clear();
  }

  void EmitLine(std::string_view line, OutputStream which) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (log_output_) spdlog::info("{} pid={} {}: {}", tag_, pid_, which == OutputStream::kStdout ? "out" : "err", line);
    if (events_.on_line) events_.on_line(which, line);
  }

  // Drains whatever output is already buffered in a pipe, without blocking.
  void DrainNow(asio::posix::stream_descriptor& pipe, std::string& buf, OutputStream which) {
    if (!pipe.is_open()) return;
    std::array<char, 4096> chunk;
    ::fcntl(pipe.native_handle(), F_SETFL, ::fcntl(pipe.native_handle(), F_GETFL) | O_NONBLOCK);
    for (int rounds = 0; rounds < 64; ++rounds) {
      ssize_t n = ::read(pipe.native_handle(), chunk.data(), chunk.size());
      if (n <= 0) break;
      Consume(buf, std::string_view(chunk.data(), n), which);
    }
    Flush(buf, which);
  }

  void OnExit() {
    // While the child is a zombie its pid cannot be reused, so the group kill is safe:
    // it removes any children the worker left behind.
    ::kill(-pid_, SIGKILL);
    siginfo_t info{};
    if (::waitid(P_PIDFD, pidfd_.native_handle(), &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) {
      if (errno == EINTR || info.si_pid == 0) {
        WaitExit();
        return;
      }
    }
    ExitInfo exit;
    if (info.si_code == CLD_EXITED)
      exit.code = info.si_status;
    else
      exit.signal = info.si_status;
    DrainNow(out_, out_buf_, OutputStream::kStdout);
    DrainNow(err_, err_buf_, OutputStream::kStderr);
    Shutdown();
    auto events = std::move(events_);
    events_ = {};
    reaped_(pid_);  // may destroy the launcher's reference; self keeps us alive
    if (events.on_exit) events.on_exit(exit);
  }

  int pid_;
  asio::posix::stream_descriptor pidfd_;
  asio::posix::stream_descriptor out_;
  asio::posix::stream_descriptor err_;
  std::string tag_;
  bool log_output_;
  ProcessEvents events_;
  std::function<void(int)> reaped_;
  std::string out_buf_, err_buf_;
  std::array<char, 4096> out_chunk_{}, err_chunk_{};
};

namespace {

struct ExecFailure {
  int stage;  // 1: chdir, 2: exec, 3: fd setup, 4: user and groups, 5: resource limits
  int err;
};

// Everything the child does between fork and exec, prepared before fork.
struct ChildSetup {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* listen_pid_digits;  // to fill in with the child's pid, or null
  const char* cwd;          // or null
  int devnull, out_w, err_w, report_w;
  const int* fds;
  int nfds;
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

// Runs in the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void ChildMain(const ChildSetup& c) {
  int report_w = c.report_w;
  auto fail = [&](int stage) {
    ExecFailure f{stage, errno};
    (void)!::write(report_w, &f, sizeof f);
    ::_exit(127);
  };
  ::setpgid(0, 0);
  sigset_t all;
  ::sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);

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
  if (c.listen_pid_digits) {
    char digits[16];
    int n = 0;
    for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
    for (int i = 0; i < n; ++i) c.listen_pid_digits[i] = digits[n - 1 - i];
    c.listen_pid_digits[n] = '\0';
  }
  if (c.fd_limit) ::setrlimit(RLIMIT_NOFILE, c.fd_limit);
  for (const auto& [resource, limit] : c.limits)
    if (::setrlimit(resource, &limit) != 0) fail(5);
  if (c.umask >= 0) ::umask(static_cast<mode_t>(c.umask));
  if (c.set_identity) {
    if (::setgroups(c.groups.size(), c.groups.data()) != 0 || ::setgid(c.gid) != 0 || ::setuid(c.uid) != 0) fail(4);
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

// Fills in who the child runs as, and HOME, USER and LOGNAME when env lacks them.
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

}  // namespace

PosixLauncher::PosixLauncher(asio::io_context& io) : io_(io) {}

PosixLauncher::~PosixLauncher() {
  for (auto& [pid, watch] : children_) watch->Shutdown();
}

Result<int> PosixLauncher::Launch(const LaunchSpec& spec, ProcessEvents events) {
  if (spec.argv.empty()) return Status::InvalidArgument("empty command");
  if (spec.fds.size() > 200) return Status::InvalidArgument("too many descriptors to pass (listeners and FD store)");
  std::string path = ResolveExecutable(spec.argv[0], spec.env, spec.cwd);
  if (path.empty()) return Status::NotFound("executable not found or not executable: " + spec.argv[0]);

  // Everything the child needs is allocated before fork.
  ChildSetup setup{};
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  if (Status s = ResolveIdentity(spec, &setup, &env_strings); !s.ok()) return s;
  if (spec.set_listen_pid) env_strings.push_back("LISTEN_PID=" + std::string(16, '\0'));
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
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Status::FromErrno("open /dev/null", errno);

  setup.path = path.c_str();
  setup.argv = argv.data();
  setup.envp = envp.data();
  setup.listen_pid_digits = spec.set_listen_pid ? env_strings.back().data() + std::strlen("LISTEN_PID=") : nullptr;
  setup.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  setup.devnull = devnull.get();
  setup.out_w = out_w.get();
  setup.err_w = err_w.get();
  setup.report_w = report_w.get();
  setup.fds = spec.fds.data();
  setup.nfds = static_cast<int>(spec.fds.size());
  setup.umask = spec.umask ? static_cast<int>(*spec.umask) : -1;
  setup.death_signal = spec.parent_death_signal;
  setup.parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork", errno);
  if (pid == 0) ChildMain(setup);
  ::setpgid(pid, pid);  // also in the parent, so signals to the group work at once
  out_w.Reset();
  err_w.Reset();
  report_w.Reset();

  // The report pipe closes at exec (CLOEXEC): EOF means the program is running.
  ExecFailure failure{};
  ssize_t n;
  do n = ::read(report_r.get(), &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  if (n == sizeof failure) {
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

  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Status::FromErrno("open pidfd", e);
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  auto watch =
      std::make_shared<ChildWatch>(io_, pid, pidfd, out_r.ReleaseOwnership(), err_r.ReleaseOwnership(), spec.tag,
                                   spec.log_output, std::move(events), [this](int reaped) { children_.erase(reaped); });
  children_[pid] = watch;
  watch->Start();
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

nlohmann::json PosixLauncher::Export(std::vector<int>* keep) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [pid, watch] : children_) out.push_back(watch->Export(keep));
  return out;
}

Status PosixLauncher::Import(const nlohmann::json& children) {
  try {
    for (const auto& c : children) {
      int pid = c.at("pid").get<int>();
      int fds[3] = {c.at("pidfd").get<int>(), c.at("stdout").get<int>(), c.at("stderr").get<int>()};
      if (pid <= 0 || fds[0] < 0) return Status::InvalidArgument("child " + std::to_string(pid) + ": no pidfd");
      for (int fd : fds)
        if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      // Pipes that a closed stdout left behind are stand-ins the reader closes at once.
      for (int i = 1; i < 3; ++i)
        if (fds[i] < 0) fds[i] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      auto watch = std::make_shared<ChildWatch>(io_, pid, fds[0], fds[1], fds[2], c.at("tag").get<std::string>(), true,
                                                ProcessEvents{}, [this](int reaped) {
                                                  children_.erase(reaped);
                                                  unclaimed_.erase(reaped);
                                                });
      watch->SetPartialLines(c.value("stdout_partial", ""), c.value("stderr_partial", ""));
      children_[pid] = watch;
      unclaimed_.insert(pid);
      watch->Start();
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("children: ") + e.what());
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
