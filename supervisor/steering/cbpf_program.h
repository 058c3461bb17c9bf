// The classic BPF program batond attaches to a reuseport group (SO_ATTACH_REUSEPORT_CBPF):
// for every new connection or datagram it returns the index, in the group, of the socket
// that gets it. With several targets it draws SKF_AD_RANDOM mod 100 and walks cumulative
// weights. Pure: built and evaluated here, attached by ReuseportGroup.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <vector>

namespace baton {

struct SteeringTarget {
  uint32_t index;  // the socket's place in the group
  int weight;      // percent; the weights of a program sum to 100
};

// A program that sends `weight` percent to each target. Targets with weight 0 are left
// out; at least one target must have a weight.
std::vector<sock_filter> BuildSteeringProgram(const std::vector<SteeringTarget>& targets);

// What the kernel would return for `program` when SKF_AD_RANDOM yields `random`; for tests.
// Supports exactly the instructions BuildSteeringProgram emits.
uint32_t EvaluateSteeringProgram(const std::vector<sock_filter>& program, uint32_t random);

}  // namespace baton
