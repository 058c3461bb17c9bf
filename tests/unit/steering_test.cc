// Kernel steering's pure parts: the classic BPF program that splits connections by weight,
// and the mirror of the kernel's order of a reuseport group's sockets.
#include <catch2/catch.hpp>

#include <map>

#include "supervisor/steering/cbpf_program.h"
#include "supervisor/steering/group_layout.h"

using namespace baton;

namespace {

// Where each of the 100 values of SKF_AD_RANDOM mod 100 goes, by index. The kernel draws
// a 32-bit random number; every residue is equally likely up to 2^32 mod 100 = 96 values.
std::map<uint32_t, int> Split(const std::vector<SteeringTarget>& targets) {
  auto program = BuildSteeringProgram(targets);
  std::map<uint32_t, int> shares;
  for (uint32_t r = 0; r < 100; ++r) shares[EvaluateSteeringProgram(program, r + 100 * 12345)]++;
  return shares;
}

}  // namespace

TEST_CASE("the steering program sends each target exactly its weight of the 100 draws") {
  CHECK(Split({{3, 100}}) == std::map<uint32_t, int>{{3, 100}});
  CHECK(BuildSteeringProgram({{3, 100}}).size() == 1);  // one target: no random number drawn
  CHECK(Split({{0, 90}, {2, 10}}) == std::map<uint32_t, int>{{0, 90}, {2, 10}});
  CHECK(Split({{1, 1}, {0, 99}}) == std::map<uint32_t, int>{{1, 1}, {0, 99}});
  CHECK(Split({{0, 50}, {1, 25}, {2, 25}}) == std::map<uint32_t, int>{{0, 50}, {1, 25}, {2, 25}});
  // A target without weight is left out, not given the remainder.
  CHECK(Split({{0, 0}, {1, 100}}) == std::map<uint32_t, int>{{1, 100}});
  // Its instructions stay within what the kernel's classic BPF checker takes.
  for (const auto& i : BuildSteeringProgram({{0, 10}, {1, 20}, {2, 70}}))
    CHECK((i.code == (BPF_LD | BPF_W | BPF_ABS) || i.code == (BPF_ALU | BPF_MOD | BPF_K) ||
           i.code == (BPF_JMP | BPF_JGE | BPF_K) || i.code == (BPF_RET | BPF_K)));
}

TEST_CASE("the group layout moves the last socket into a leaving socket's slot, as the kernel does") {
  GroupLayout g;
  for (int64_t id : {0, 5, 6, 7}) g.Join(id);
  CHECK(*g.IndexOf(6) == 2);
  g.Leave(5);
  CHECK(g.members() == std::vector<int64_t>{0, 7, 6});
  g.Leave(6);  // the last one: nothing moves
  CHECK(g.members() == std::vector<int64_t>{0, 7});
  CHECK_FALSE(g.IndexOf(5));
  g.Leave(42);  // not a member: nothing changes
  CHECK(g.members() == std::vector<int64_t>{0, 7});
}

TEST_CASE("a socket leaves only when that moves no socket that traffic goes to") {
  GroupLayout g;
  for (int64_t id : {0, 1, 2}) g.Join(id);  // anchor, retired generation 1, live generation 2
  CHECK_FALSE(g.CanLeave(1, {2}));          // 2 would move into slot 1 while the program returns 2
  CHECK(g.CanLeave(2, {0}));                // the last one leaves: nothing moves
  g.Join(3);                                // a new generation, not ready: nothing goes to it
  CHECK(g.CanLeave(1, {2}));                // now 3 moves into slot 1, and nothing goes to 3
  CHECK_FALSE(g.CanLeave(1, {2, 3}));
  CHECK_FALSE(g.CanLeave(9, {}));  // not a member
}
