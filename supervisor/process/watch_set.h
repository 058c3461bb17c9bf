// A set of descriptors watched for reading through one epoll instance of its own, which the
// loop watches as a single descriptor. For the children's pidfds and output pipes, three
// per worker: registering each with the loop's reactor cost an epoll_ctl per descriptor
// and another per wait, and at a self-upgrade the exec tore every registration down and the
// next program made them all again (6,000 calls and 9,000 removals with 1,000 workers).
// This set is level-triggered and registered once per descriptor, and a self-upgrade
// carries it across the exec whole: the next program adopts its registrations as they are.
//
// Each registration's data is the descriptor's number. Not thread-safe: the loop's only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "supervisor/base/lifetime.h"
#include "supervisor/base/status.h"

namespace baton {

class WatchSet {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // `fd` is readable, has hung up, or has an error: called again while it stays so.
    virtual void OnReady(int fd) = 0;
  };

  // With a new, empty epoll set; `ok()` says whether it could be made.
  explicit WatchSet(boost::asio::io_context& io);
  ~WatchSet();
  WatchSet(const WatchSet&) = delete;
  WatchSet& operator=(const WatchSet&) = delete;

  bool ok() const { return epoll_.is_open(); }
  // The epoll set's descriptor, to carry across a self-upgrade.
  int fd() const { return epoll_.is_open() ? epoll_.native_handle() : -1; }

  // Takes over a set the previous program carried, in place of this one's, which must be
  // empty; its registrations stand, and each is claimed with Adopt. Refuses a descriptor
  // that is not an epoll set.
  Status TakeOver(int carried_fd);

  // Watches `fd` (the caller keeps it open until Remove) and calls `handler` when ready.
  Status Add(int fd, std::shared_ptr<Handler> handler);
  // A descriptor already in a carried set: no system call.
  void Adopt(int fd, std::shared_ptr<Handler> handler);
  // Stops watching `fd`; call before closing it.
  void Remove(int fd);
  size_t size() const { return handlers_.size(); }

 private:
  struct Entry {
    std::shared_ptr<Handler> handler;
    uint64_t since = 0;  // the batch during which it was added
  };

  void Wait();
  void DispatchReady();

  mutable boost::asio::posix::stream_descriptor epoll_;  // native_handle() is not const
  std::unordered_map<int, Entry> handlers_;
  uint64_t batch_ = 1;
  bool waiting_ = false;
  Lifetime alive_;
};

}  // namespace baton
