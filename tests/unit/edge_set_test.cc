// EdgeSet: the proxy's sockets, each reported once per change (edge-triggered), gone from
// the set when closed, and a set destroyed by its own callback stops there. Real sockets
// on a real loop; the set always waits, so the loop is polled, never run to its end, and
// every event tested is already in the kernel when it is polled.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "supervisor/base/unique_fd.h"
#include "supervisor/proxy/edge_set.h"

using namespace baton;

namespace {

struct Pair {
  Pair() {
    int s[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) == 0);
    near.Reset(s[0]);
    far.Reset(s[1]);
  }
  void Send() { REQUIRE(::write(far.get(), "x", 1) == 1); }
  UniqueFd near, far;
};

using Events = std::vector<std::pair<uint64_t, uint32_t>>;

// Runs what the loop has ready, several turns: the set's own wait and then its dispatch.
void Turn(boost::asio::io_context& io) {
  for (int i = 0; i < 4; ++i) {
    io.restart();
    io.poll();
  }
}

bool Has(const Events& events, uint64_t key, uint32_t mask) {
  for (const auto& [k, e] : events)
    if (k == key && (e & mask)) return true;
  return false;
}

}  // namespace

TEST_CASE("edge set: each change is reported once, with its key") {
  boost::asio::io_context io;
  Events seen;
  EdgeSet set(io, [&](uint64_t key, uint32_t events) { seen.emplace_back(key, events); });
  REQUIRE(set.ok());
  Pair pair;
  REQUIRE(set.Add(pair.near.get(), 41).ok());
  Turn(io);
  CHECK(Has(seen, 41, EPOLLOUT));  // writable from the start
  CHECK_FALSE(Has(seen, 41, EPOLLIN));

  seen.clear();
  pair.Send();
  Turn(io);
  REQUIRE(seen.size() == 1);
  CHECK(Has(seen, 41, EPOLLIN));

  seen.clear();
  Turn(io);
  CHECK(seen.empty());  // unread, but not new: not reported again

  pair.Send();
  Turn(io);
  CHECK(Has(seen, 41, EPOLLIN));

  seen.clear();
  pair.far.Reset();
  Turn(io);
  CHECK(Has(seen, 41, EPOLLRDHUP));
}

TEST_CASE("edge set: a socket whose file stays open under a duplicate leaves the set only with Remove") {
  boost::asio::io_context io;
  Events seen;
  EdgeSet set(io, [&](uint64_t key, uint32_t events) { seen.emplace_back(key, events); });
  Pair kept, removed;
  REQUIRE(set.Add(kept.near.get(), 2).ok());
  REQUIRE(set.Add(removed.near.get(), 3).ok());
  Turn(io);
  seen.clear();

  UniqueFd dup_kept(::dup(kept.near.get())), dup_removed(::dup(removed.near.get()));
  kept.near.Reset();
  set.Remove(removed.near.get());
  removed.near.Reset();
  kept.Send();
  removed.Send();
  Turn(io);
  CHECK(Has(seen, 2, EPOLLIN));  // closed, yet still reported: why Remove exists
  CHECK_FALSE(Has(seen, 3, ~0u));
}

TEST_CASE("edge set: a callback that destroys the set ends the dispatch") {
  boost::asio::io_context io;
  int calls = 0;
  std::unique_ptr<EdgeSet> set;
  set = std::make_unique<EdgeSet>(io, [&](uint64_t, uint32_t) {
    ++calls;
    set.reset();
  });
  Pair a, b;
  REQUIRE(set->Add(a.near.get(), 1).ok());
  REQUIRE(set->Add(b.near.get(), 2).ok());  // both writable: two events in one batch
  Turn(io);
  CHECK(calls == 1);
  CHECK(set == nullptr);
}
