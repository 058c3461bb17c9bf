#include "supervisor/process/watch_set.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "supervisor/base/log.h"

namespace baton {

namespace {
constexpr int kBatch = 64;  // events per turn of the loop; the rest come at the next

bool IsEpollSet(int fd) {
  char target[64];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  return n > 0 && std::string_view(target, static_cast<size_t>(n)) == "anon_inode:[eventpoll]";
}
}  // namespace

WatchSet::WatchSet(boost::asio::io_context& io) : epoll_(io) {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) {
    spdlog::error("cannot create an epoll set for the children: {}", std::strerror(errno));
    return;
  }
  epoll_.assign(fd);
}

WatchSet::~WatchSet() {
  alive_.End();
  boost::system::error_code ignored;
  epoll_.close(ignored);
}

Status WatchSet::TakeOver(int carried_fd) {
  if (!handlers_.empty()) return Status::FailedPrecondition("the set already watches descriptors");
  if (!IsEpollSet(carried_fd)) return Status::InvalidArgument(std::to_string(carried_fd) + " is not an epoll set");
  boost::system::error_code ignored;
  epoll_.close(ignored);  // a wait in flight ends aborted, and re-arms on the new set
  epoll_.assign(carried_fd, ignored);
  if (ignored) return Status::FromErrno("watch the carried epoll set", ignored.value());
  return Status::Ok();
}

Status WatchSet::Add(int fd, std::shared_ptr<Handler> handler) {
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: what a turn leaves unread is reported again
  ev.data.u64 = static_cast<uint64_t>(fd);
  if (!ok() || ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return Status::FromErrno("watch descriptor " + std::to_string(fd), ok() ? errno : EBADF);
  Adopt(fd, std::move(handler));
  return Status::Ok();
}

void WatchSet::Adopt(int fd, std::shared_ptr<Handler> handler) {
  handlers_[fd] = Entry{std::move(handler), batch_};
  Wait();
}

void WatchSet::Remove(int fd) {
  if (handlers_.erase(fd) == 0) return;
  if (ok()) ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
  // An empty set is never ready: a wait left on it would keep the loop from running out
  // of work.
  if (handlers_.empty() && waiting_) epoll_.cancel();
}

void WatchSet::Wait() {
  if (waiting_ || handlers_.empty() || !ok()) return;
  waiting_ = true;
  epoll_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [this, alive = alive_.token()](const boost::system::error_code& ec) {
                      if (!alive) return;
                      waiting_ = false;
                      if (!ec) DispatchReady();
                      Wait();  // the reactor re-arms the set: reported at once if still ready
                    });
}

void WatchSet::DispatchReady() {
  std::array<epoll_event, kBatch> events;
  int n = ::epoll_wait(epoll_.native_handle(), events.data(), kBatch, 0);
  const uint64_t batch = ++batch_;
  for (int i = 0; i < n; ++i) {
    int fd = static_cast<int>(events[i].data.u64);
    auto it = handlers_.find(fd);
    if (it == handlers_.end()) {
      // Removed by an earlier handler of this batch, or a carried registration nobody
      // claimed, which level triggering would report forever.
      ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
      continue;
    }
    // A descriptor closed earlier in this batch and its number given to a new one: the
    // event was the old one's. The new one's, if any, comes in the next batch.
    if (it->second.since == batch) continue;
    std::shared_ptr<Handler> handler = it->second.handler;  // it may remove itself
    handler->OnReady(fd);
  }
}

}  // namespace baton
