#include "supervisor/process/child_watch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "supervisor/base/log.h"

namespace baton {

namespace {
constexpr size_t kMaxLine = 16 * 1024;
}  // namespace

ChildWatch::ChildWatch(WatchSet& set, int pid, int pidfd, int out, int err, std::string tag, bool log_output,
                       ProcessEvents events, std::function<void(int)> reaped)
    : set_(set),
      pid_(pid),
      pidfd_(pidfd),
      out_(out),
      err_(err),
      tag_(std::move(tag)),
      log_output_(log_output),
      events_(std::move(events)),
      reaped_(std::move(reaped)) {}

Status ChildWatch::Start(bool carried) {
  for (UniqueFd* fd : {&pidfd_, &out_, &err_}) {
    if (!*fd) continue;
    if (carried) {
      set_.Adopt(fd->get(), shared_from_this());
      continue;
    }
    if (fd != &pidfd_) ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    if (Status s = set_.Add(fd->get(), shared_from_this()); !s.ok()) {
      for (UniqueFd* added : {&pidfd_, &out_, &err_}) set_.Remove(added->get());
      return s;
    }
  }
  return Status::Ok();
}

void ChildWatch::Release() {
  for (UniqueFd* fd : {&pidfd_, &out_, &err_}) {
    set_.Remove(fd->get());
    (void)fd->ReleaseOwnership();
  }
}

void ChildWatch::Shutdown() {
  for (UniqueFd* fd : {&pidfd_, &out_, &err_}) Close(*fd);
}

CarriedChild ChildWatch::Export(std::vector<int>* keep) const {
  auto fd = [&](const UniqueFd& d) {
    if (d) keep->push_back(d.get());
    return d ? d.get() : -1;
  };
  return {pid_, fd(pidfd_), fd(out_), fd(err_), out_buf_, err_buf_, tag_};
}

void ChildWatch::SetPartialLines(std::string out, std::string err) {
  out_buf_ = std::move(out);
  err_buf_ = std::move(err);
}

void ChildWatch::OnReady(int fd) {
  if (fd == pidfd_.get()) return OnExit();
  bool is_out = fd == out_.get();
  UniqueFd& pipe = is_out ? out_ : err_;
  std::string& buf = is_out ? out_buf_ : err_buf_;
  OutputStream which = is_out ? OutputStream::kStdout : OutputStream::kStderr;
  // At most 16 reads, then the others' turn: the set reports the rest at once.
  if (ReadAvailable(pipe, buf, which, 16) == PipeState::kEnded) {
    Flush(buf, which);
    Close(pipe);
  }
}

void ChildWatch::Close(UniqueFd& fd) {
  if (!fd) return;
  set_.Remove(fd.get());
  fd.Reset();
}

// Reads up to `rounds` times, without blocking, until nothing is left, into one buffer
// shared by every child (not a buffer per pipe: 8 MiB with 1,000 workers).
ChildWatch::PipeState ChildWatch::ReadAvailable(const UniqueFd& pipe, std::string& buf, OutputStream which,
                                                int rounds) {
  static thread_local std::array<char, 16384> chunk;
  for (int i = 0; i < rounds && pipe; ++i) {
    ssize_t n = ::read(pipe.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return PipeState::kOpen;
    if (n <= 0) return PipeState::kEnded;
    Consume(buf, std::string_view(chunk.data(), static_cast<size_t>(n)), which);
  }
  return pipe ? PipeState::kOpen : PipeState::kEnded;
}

void ChildWatch::Consume(std::string& buf, std::string_view data, OutputStream which) {
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

void ChildWatch::Flush(std::string& buf, OutputStream which) {
  if (!buf.empty()) EmitLine(buf, which);
  buf.clear();
}

void ChildWatch::EmitLine(std::string_view line, OutputStream which) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (log_output_) spdlog::info("{} pid={} {}: {}", tag_, pid_, which == OutputStream::kStdout ? "out" : "err", line);
  if (events_.on_line) events_.on_line(which, line);
}

// Drains whatever output is already buffered in a pipe, without blocking.
void ChildWatch::DrainNow(const UniqueFd& pipe, std::string& buf, OutputStream which) {
  if (!pipe) return;
  ReadAvailable(pipe, buf, which, 64);
  Flush(buf, which);
}

void ChildWatch::OnExit() {
  // Look, without reaping, whether the child is a zombie: a readiness event can belong
  // to a descriptor that had this number before.
  siginfo_t info{};
  int looked = ::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED | WNOHANG | WNOWAIT);
  if ((looked != 0 && errno == EINTR) || (looked == 0 && info.si_pid == 0)) return;  // reported again if so
  if (looked == 0) {
    // A zombie's pid cannot be reused, so the group kill is safe: it removes any
    // children the worker left behind. Then it is reaped (at once: it has exited).
    ::kill(-pid_, SIGKILL);
    info = {};
    while (::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED | WNOHANG) != 0 && errno == EINTR) {
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
  reaped_(pid_);  // the launcher lets go of this watch; the set's dispatch still holds it
  if (events.on_exit) events.on_exit(exit);
}

}  // namespace baton
