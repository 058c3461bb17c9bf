// ReuseportGroup against the kernel, without batond: which socket of the group each new
// connection reaches, as generations open sockets, are routed to, retire and leave, with
// each program. Classic BPF: that the mirror of the kernel's order is right shows in where
// connections land after a socket left the group and the kernel moved the last one into
// its slot. eBPF: an exact split, and queued connections moved off a socket that leaves.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "supervisor/sockets/listener_set.h"
#include "supervisor/steering/ebpf_program.h"
#include "supervisor/steering/reuseport_group.h"
#include "tests/helpers/skip.h"

using namespace baton;

namespace {

// Connects `n` times to `port` and counts, per socket in `fds`, the connections it took.
std::map<int, int> Land(int port, const std::map<int, int>& fds, int n) {
  std::map<int, int> got;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int found = 0;
    for (const auto& [name, fd] : fds) {
      int accepted = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (accepted >= 0) {
        ::close(accepted);
        got[name]++;
        ++found;
      }
    }
    ::close(c);
    REQUIRE(found == 1);  // the handshake completed in exactly one of them
  }
  return got;
}

DaemonConfig WithProgram(SteeringProgram program) {
  DaemonConfig d;
  d.steering_program = program;
  return d;
}

// A group on a fresh loopback port, with the program `daemon` asks for.
struct TestGroup {
  explicit TestGroup(const DaemonConfig& daemon, const char* address = "tcp://127.0.0.1:0") {
    ListenerConfig config{"http", *ParseSocketAddress(address), 128, 1, 1, ListenMode::kKernel, {}};
    auto bound = BindListener(config);
    REQUIRE(bound.ok());
    anchor = std::move(bound->fd);
    config.address = bound->address;
    port = bound->address.port;
    auto created = ReuseportGroup::Create(config, anchor.get(), daemon);
    if (created.ok())
      group = std::move(*created);
    else
      error = created.status().message();
  }
  int Open(int64_t gen, bool take_anchor) {
    auto fd = group->Open(gen, take_anchor);
    REQUIRE(fd.ok());
    int flags = ::fcntl(*fd, F_GETFL);
    ::fcntl(*fd, F_SETFL, flags | O_NONBLOCK);
    return *fd;
  }
  UniqueFd anchor;
  int port = 0;
  std::unique_ptr<ReuseportGroup> group;
  std::string error;
};

}  // namespace

TEST_CASE("reuseport group: sockets get connections only when routed to, and the kernel's order is mirrored exactly") {
  TestGroup t(WithProgram(SteeringProgram::kCbpf));
  REQUIRE(t.group);
  ReuseportGroup& group = *t.group;
  CHECK(group.Describe()["program"] == "cbpf");
  int port = t.port;
  auto open = [&](int64_t gen, bool take_anchor) { return t.Open(gen, take_anchor); };
  // Generation 1 starts with nothing live: it takes the anchor, where clients wait.
  int g1 = open(1, true);
  REQUIRE(group.Route({{1, 100}}).ok());
  int g2 = open(2, false);  // joins, not ready: nothing reaches it
  CHECK(Land(port, {{1, g1}, {2, g2}}, 20) == std::map<int, int>{{1, 20}});
  REQUIRE(group.Route({{2, 100}}).ok());  // promoted
  CHECK(Land(port, {{1, g1}, {2, g2}}, 20) == std::map<int, int>{{2, 20}});
  REQUIRE(group.Route({{1, 50}, {2, 50}}).ok());
  auto split = Land(port, {{1, g1}, {2, g2}}, 400);
  CHECK(split[1] > 120);  // drawn: 200 expected, 4 standard deviations either way
  CHECK(split[2] > 120);
  REQUIRE(group.Route({{2, 100}}).ok());
  group.Retire(1);  // the anchor stays in the group: it holds the port

  // [anchor, 2, 3]: 3 is routed and last, so 2 cannot leave yet (3 would move into its slot).
  int g3 = open(3, false);
  REQUIRE(group.Route({{3, 100}}).ok());
  group.Retire(2);
  CHECK(group.Describe()["sockets"].size() == 3);
  CHECK(Land(port, {{2, g2}, {3, g3}}, 20) == std::map<int, int>{{3, 20}});
  // [anchor, 2, 3, 4]: now 2 leaves and the kernel moves 4 into its slot: [anchor, 4, 3].
  int g4 = open(4, false);
  REQUIRE(group.Route({{3, 100}}).ok());
  nlohmann::json sockets = group.Describe()["sockets"];
  REQUIRE(sockets.size() == 3);
  CHECK(sockets[1]["generation"] == 4);
  CHECK(sockets[2]["generation"] == 3);
  CHECK(Land(port, {{3, g3}, {4, g4}}, 20) == std::map<int, int>{{3, 20}});
  REQUIRE(group.Route({{4, 100}}).ok());  // index 1: right only if the kernel did move it there
  CHECK(Land(port, {{3, g3}, {4, g4}}, 20) == std::map<int, int>{{4, 20}});
  REQUIRE(group.Route({{3, 10}, {4, 90}}).ok());
  auto last = Land(port, {{3, g3}, {4, g4}}, 400);
  CHECK(last[3] + last[4] == 400);
  CHECK(last[4] > 300);
}

TEST_CASE(
    "reuseport group with eBPF: an exact split, any socket leaves at once, and its queue moves to the routed one") {
  TestGroup t(WithProgram(SteeringProgram::kEbpf));
  if (!t.group) SKIP_TEST("the kernel refused the eBPF steering program (needs CAP_BPF): " + t.error);
  ReuseportGroup& group = *t.group;
  CHECK(group.Describe()["program"] == "ebpf");
  int g1 = t.Open(1, true);
  REQUIRE(group.Route({{1, 100}}).ok());
  int g2 = t.Open(2, false);
  CHECK(Land(t.port, {{1, g1}, {2, g2}}, 20) == std::map<int, int>{{1, 20}});  // not routed: nothing
  // Counted, not drawn: the weight of every 100 picks. Drawn, 120 of 400 would vary by
  // about 9 either way; counted, it is exact but for a stray pick (one run of 31 beside
  // the whole suite was off; its cause is not known, so the figures are printed).
  REQUIRE(group.Route({{1, 70}, {2, 30}}).ok());
  auto split = Land(t.port, {{1, g1}, {2, g2}}, 400);
  INFO("split: " << split[1] << "/" << split[2]);
  CHECK(split[1] + split[2] == 400);
  CHECK(std::abs(split[2] - 120) <= 2);
  REQUIRE(group.Route({{2, 100}}).ok());
  group.Retire(1);

  // [anchor, 2, 3]: with slots, 2 leaves at once although 3 is routed and last.
  int g3 = t.Open(3, false);
  REQUIRE(group.Route({{3, 100}}).ok());
  group.Retire(2);
  CHECK(group.Describe()["sockets"].size() == 2);
  CHECK(Land(t.port, {{3, g3}}, 20) == std::map<int, int>{{3, 20}});

  // Connections waiting in 3's queue when it leaves move to 4, the routed socket.
  int g4 = t.Open(4, false);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(t.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  CHECK(group.Queued(3) == 10);
  REQUIRE(group.Route({{4, 100}}).ok());
  group.Retire(3);
  CHECK(group.Queued(4) == 10);
  int moved = 0;
  for (int fd; (fd = ::accept4(g4, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; ++moved) {
    CHECK(::write(fd, "x", 1) == 1);
    ::close(fd);
  }
  CHECK(moved == 10);
  char byte = 0;
  for (auto& c : clients) CHECK(::read(c.get(), &byte, 1) == 1);  // each one answered, none reset
}

namespace {

// What an exec would leave: the exported descriptors open under the same numbers, once the
// exporting group is gone. Here the group is destroyed, not exec'd over, so the state is
// rewritten to duplicates.
nlohmann::json DuplicateDescriptors(nlohmann::json state) {
  auto dup = [](nlohmann::json& fd) { fd = ::fcntl(fd.get<int>(), F_DUPFD_CLOEXEC, 3); };
  dup(state["anchor_fd"]);
  for (auto& s : state["sockets"]) dup(s["fd"]);
  for (auto& [name, fd] : state["ebpf_maps"].items()) dup(fd);
  dup(state["ebpf_program"]["fd"]);
  return state;
}

}  // namespace

TEST_CASE("reuseport group with eBPF: a self-upgrade takes the same program over without verifying it again") {
  TestGroup t(WithProgram(SteeringProgram::kEbpf));
  if (!t.group) SKIP_TEST("the kernel refused the eBPF steering program (needs CAP_BPF): " + t.error);
  t.Open(1, true);
  t.Open(2, false);
  REQUIRE(t.group->Route({{1, 50}, {2, 50}}).ok());
  // Generation 1 has the anchor, 2 a socket of its own: under their carried numbers.
  auto sockets = [](const nlohmann::json& state) {
    return std::map<int, int>{{1, state["anchor_fd"].get<int>()}, {2, state["sockets"][0]["fd"].get<int>()}};
  };
  std::vector<int> keep;
  nlohmann::json state = DuplicateDescriptors(t.group->Export(&keep));
  CHECK(keep.size() == 2 + state["ebpf_maps"].size() + 1);  // anchor, socket 2, the maps, the program
  ListenerConfig config = t.group->config();
  t.group.reset();  // its sockets stay open through the duplicates

  auto adopted = ReuseportGroup::Adopt(config, state, WithProgram(SteeringProgram::kEbpf));
  REQUIRE(adopted.ok());
  nlohmann::json described = (*adopted)->Describe();
  CHECK(described["program"] == "ebpf");
  CHECK(described["program_carried"] == true);
  auto split = Land(t.port, sockets(state), 200);  // the route carried over, exactly
  INFO("split: " << split[1] << "/" << split[2]);
  CHECK(std::abs(split[2] - 100) <= 2);

  // A program that is not this batond's (another build's digest) is loaded afresh.
  std::vector<int> again;
  nlohmann::json other = DuplicateDescriptors((*adopted)->Export(&again));
  other["ebpf_program"]["digest"] = "another build";
  adopted->reset();
  auto reloaded = ReuseportGroup::Adopt(config, other, WithProgram(SteeringProgram::kEbpf));
  REQUIRE(reloaded.ok());
  CHECK_FALSE((*reloaded)->Describe().contains("program_carried"));
  split = Land(t.port, sockets(other), 200);
  CHECK(std::abs(split[2] - 100) <= 2);
}

namespace {

// `max_entries` of the eBPF map open as `fd` in this process, from its fdinfo.
long MaxEntries(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  long value = -1;
  while (in >> key)
    if (key == "max_entries:" && in >> value) return value;
  return -1;
}

}  // namespace

TEST_CASE("reuseport group with eBPF: only a UDP group gets a table of flows") {
  TestGroup tcp(WithProgram(SteeringProgram::kEbpf));
  if (!tcp.group) SKIP_TEST("the kernel refused the eBPF steering program (needs CAP_BPF): " + tcp.error);
  TestGroup udp(WithProgram(SteeringProgram::kEbpf), "udp://127.0.0.1:0");
  REQUIRE(udp.group);
  std::vector<int> keep;
  long tcp_flows = MaxEntries(tcp.group->Export(&keep)["ebpf_maps"]["flows"].get<int>());
  long udp_flows = MaxEntries(udp.group->Export(&keep)["ebpf_maps"]["flows"].get<int>());
  CHECK(udp_flows == 65536);
  // One entry asked for; the kernel gives an LRU table at least one per possible CPU.
  CHECK(tcp_flows >= 1);
  CHECK(tcp_flows <= 1024);
}

TEST_CASE("eBPF program: a full flow table carried over for a TCP group is dropped, a UDP group's is kept") {
  auto udp = EbpfProgram::Load(std::chrono::seconds(10), true);
  if (!udp.ok()) SKIP_TEST("the kernel refused the eBPF steering program (needs CAP_BPF): " + udp.status().message());
  // What an earlier batond carried for every group: a table of 65,536.
  auto carried = [&](nlohmann::json* maps, nlohmann::json* program) {
    std::vector<int> keep;
    *maps = (*udp)->Export(&keep);
    *program = (*udp)->ExportProgram(&keep);
    for (auto& [name, fd] : maps->items()) fd = ::fcntl(fd.get<int>(), F_DUPFD_CLOEXEC, 3);
    (*program)["fd"] = ::fcntl((*program)["fd"].get<int>(), F_DUPFD_CLOEXEC, 3);
  };
  nlohmann::json maps, program;
  carried(&maps, &program);
  REQUIRE(MaxEntries(maps["flows"].get<int>()) == 65536);
  auto tcp = EbpfProgram::Load(std::chrono::seconds(10), false, &maps, &program);
  REQUIRE(tcp.ok());
  CHECK((*tcp)->carried());
  CHECK_FALSE((*tcp)->program_carried());  // loaded again around the small table
  std::vector<int> keep;
  nlohmann::json now = (*tcp)->Export(&keep);
  CHECK(MaxEntries(now["flows"].get<int>()) <= 1024);
  CHECK(MaxEntries(now["sockets"].get<int>()) == static_cast<long>(EbpfProgram::kSlots));

  carried(&maps, &program);
  auto kept = EbpfProgram::Load(std::chrono::seconds(10), true, &maps, &program);
  REQUIRE(kept.ok());
  CHECK((*kept)->program_carried());
  CHECK(MaxEntries((*kept)->Export(&keep)["flows"].get<int>()) == 65536);
}
