// WatchSet: level-triggered readiness through one epoll set, a stale event never reaches a
// descriptor that took a closed one's number, and a carried set's registrations stand.
// Real pipes on a real loop, run until nothing is left to do: no waiting on time.
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "supervisor/base/unique_fd.h"
#include "supervisor/process/watch_set.h"

using namespace baton;

namespace {

struct Pipe {
  Pipe() {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    read.Reset(p[0]);
    write.Reset(p[1]);
  }
  void Put() { REQUIRE(::write(write.get(), "x", 1) == 1); }
  UniqueFd read, write;
};

class Recorder : public WatchSet::Handler {
 public:
  explicit Recorder(std::function<void(int)> on_ready = {}) : on_ready_(std::move(on_ready)) {}
  void OnReady(int fd) override {
    calls.push_back(fd);
    if (on_ready_) on_ready_(fd);
  }
  std::vector<int> calls;

 private:
  std::function<void(int)> on_ready_;
};

// Drains one byte per call; removes the descriptor once the pipe is empty.
std::function<void(int)> ReadOne(WatchSet& set) {
  return [&set](int fd) {
    char c;
    if (::read(fd, &c, 1) != 1) set.Remove(fd);
  };
}

}  // namespace

TEST_CASE("watch set: what a turn leaves unread is reported again, and an empty set lets the loop end") {
  boost::asio::io_context io;
  WatchSet set(io);
  REQUIRE(set.ok());
  Pipe pipe;
  auto recorder = std::make_shared<Recorder>(ReadOne(set));
  REQUIRE(set.Add(pipe.read.get(), recorder).ok());
  pipe.Put();
  pipe.Put();
  pipe.write.Reset();  // then end-of-file, which the handler turns into Remove
  io.run();            // returns only once the set is empty: no wait is left behind
  // One byte per call: two bytes, then the end.
  CHECK(recorder->calls == std::vector<int>{pipe.read.get(), pipe.read.get(), pipe.read.get()});
  CHECK(set.size() == 0);
}

TEST_CASE("watch set: an event of a descriptor closed in the same turn does not reach the one given its number") {
  boost::asio::io_context io;
  WatchSet set(io);
  Pipe first, second, spare;
  UniqueFd reused;
  auto newcomer = std::make_shared<Recorder>();
  int second_number = second.read.get();
  // The first handler of the turn closes `second`, whose event is already in the batch,
  // and a new descriptor (empty, so never ready itself) takes its number.
  auto first_handler = std::make_shared<Recorder>([&](int) {
    if (reused) return;
    set.Remove(second_number);
    second.read.Reset();
    reused.Reset(::fcntl(spare.read.get(), F_DUPFD_CLOEXEC, second_number));
    REQUIRE(reused.get() == second_number);
    REQUIRE(set.Add(reused.get(), newcomer).ok());
  });
  auto second_handler = std::make_shared<Recorder>();
  REQUIRE(set.Add(first.read.get(), first_handler).ok());
  REQUIRE(set.Add(second.read.get(), second_handler).ok());
  first.Put();
  second.Put();   // epoll reports in the order they became ready: first, then second
  io.poll_one();  // one turn, with both events in it
  CHECK(first_handler->calls.size() == 1);
  CHECK(second_handler->calls.empty());
  CHECK(newcomer->calls.empty());
  set.Remove(first.read.get());
  set.Remove(reused.get());
  io.run();
}

TEST_CASE("watch set: a carried set keeps its registrations, and one nobody claims is dropped") {
  boost::asio::io_context io;
  Pipe claimed, unclaimed;
  UniqueFd carried;
  {
    WatchSet previous(io);
    REQUIRE(previous.Add(claimed.read.get(), std::make_shared<Recorder>()).ok());
    REQUIRE(previous.Add(unclaimed.read.get(), std::make_shared<Recorder>()).ok());
    carried.Reset(::fcntl(previous.fd(), F_DUPFD_CLOEXEC, 0));  // what the exec keeps open
  }
  io.restart();
  WatchSet set(io);
  Pipe other;
  CHECK_FALSE(set.TakeOver(other.read.get()).ok());  // not an epoll set
  REQUIRE(set.TakeOver(carried.ReleaseOwnership()).ok());
  auto recorder = std::make_shared<Recorder>(ReadOne(set));
  set.Adopt(claimed.read.get(), recorder);  // no epoll_ctl: it is registered already
  claimed.Put();
  unclaimed.Put();
  claimed.write.Reset();
  io.run();
  CHECK(recorder->calls.size() == 2);  // the byte, then the end
  // The unclaimed one was reported once and removed, not reported forever.
  CHECK(::epoll_ctl(set.fd(), EPOLL_CTL_DEL, unclaimed.read.get(), nullptr) == -1);
  CHECK(errno == ENOENT);
}

TEST_CASE("watch set: takes over a carried set only while it watches nothing") {
  boost::asio::io_context io;
  WatchSet set(io), other(io);
  Pipe pipe;
  REQUIRE(set.Add(pipe.read.get(), std::make_shared<Recorder>()).ok());
  UniqueFd copy(::fcntl(other.fd(), F_DUPFD_CLOEXEC, 0));
  CHECK_FALSE(set.TakeOver(copy.get()).ok());
  set.Remove(pipe.read.get());
  io.run();
}
