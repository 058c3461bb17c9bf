#include "supervisor/proxy/edge_set.h"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <string>

namespace baton {

namespace {
constexpr int kBatch = 64;  // events per turn of the loop; the rest come at the next
}  // namespace

EdgeSet::EdgeSet(boost::asio::io_context& io, ReadyFn ready) : epoll_(io), ready_(std::move(ready)) {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) {
    create_error_ = errno;
    return;
  }
  epoll_.assign(fd);
  Wait();
}

EdgeSet::~EdgeSet() {
  alive_.End();
  boost::system::error_code ignored;
  epoll_.close(ignored);
}

Status EdgeSet::Add(int fd, uint64_t key) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = key;
  if (!ok()) return Status::FromErrno("make an epoll set", create_error_);
  if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return Status::FromErrno("watch descriptor " + std::to_string(fd), errno);
  return Status::Ok();
}

void EdgeSet::Remove(int fd) {
  if (ok()) ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
}

// Always waiting while the set exists: the proxy's listener is in it for as long as it
// accepts, and the loop is stopped rather than run out of work.
void EdgeSet::Wait() {
  epoll_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [this, alive = alive_.token()](const boost::system::error_code& ec) {
                      if (!alive || ec) return;
                      Dispatch();
                      if (alive) Wait();  // the reactor re-arms the set: reported at once if more is queued
                    });
}

void EdgeSet::Dispatch() {
  std::array<epoll_event, kBatch> events;
  int n = ::epoll_wait(epoll_.native_handle(), events.data(), kBatch, 0);
  auto alive = alive_.token();
  for (int i = 0; i < n && alive; ++i) ready_(events[i].data.u64, events[i].events);
}

}  // namespace baton
