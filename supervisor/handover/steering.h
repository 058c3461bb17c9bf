// Where new connections go on a service's kernel-steered listeners (steering/
// reuseport_group.h does it in the kernel). The Service decides, from its generations'
// states; this interface carries it out, so the handover table is tested with a fake.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

struct GenerationWeight {
  int64_t generation;
  int weight;  // percent of new connections
  bool operator==(const GenerationWeight&) const = default;
};

class TrafficSteering {
 public:
  virtual ~TrafficSteering() = default;
  // The socket of each steered listener, by listener name, for generation `gen`'s workers:
  // a socket of its own, which receives nothing until Route names the generation; or, with
  // `take_anchor` (nothing is live), the listener's first socket, in which clients wait.
  virtual Result<std::map<std::string, int>> Open(int64_t gen, bool take_anchor) = 0;
  // New connections go to these generations by weight (summing to 100). With none, they
  // wait in each listener's first socket.
  virtual void Route(const std::vector<GenerationWeight>& weights) = 0;
  // Connections waiting in the generation's accept queues, not yet taken by a worker.
  virtual size_t Queued(int64_t gen) const = 0;
  // Generation `gen` gets its stop signal: nothing more goes to its sockets, not even a
  // flow kept with it (eBPF UDP flows move to the routed generations).
  virtual void Release(int64_t gen) = 0;
  // Generation `gen` has no worker left; its sockets go once that is safe.
  virtual void Retire(int64_t gen) = 0;
};

}  // namespace baton
