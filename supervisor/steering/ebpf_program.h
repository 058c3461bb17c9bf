// The eBPF steering program (bpf/steer.bpf.c), loaded through libbpf for one reuseport
// group: its socket array, indexed by slots batond chooses, and its route. Where the
// kernel refuses to load it (no CAP_BPF, an older kernel), Load fails and the group uses
// the classic BPF program instead.
//
// Over classic BPF it gives: a route replaced in one step (two routes, a flag flipped);
// sockets addressed by slot, not by their order in the group, so any of them can leave at
// any time; connections queued on, or still in the handshake with, a listener that
// closes are moved to the route's socket (SELECT_OR_MIGRATE) rather than reset; UDP flows
// that stay with the socket that got their first datagram; and an exact split (each
// weight is exactly that many of every 100 picks).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/base/unique_fd.h"

struct bpf_object;

namespace baton {

struct SlotWeight {
  uint32_t slot;
  int weight;  // percent; a route's weights sum to 100
};

class EbpfProgram {
 public:
  static constexpr uint32_t kSlots = 64;  // sockets per group (MAX_SLOTS in the program)
  static constexpr size_t kMaxTargets = 8;

  // Loads a fresh copy of the program and its maps. `flow_idle`: how long a UDP flow may
  // be silent and still keep its socket. Only a group of UDP sockets (`datagrams`) keeps
  // flows: elsewhere the flow table has one entry, where its 65,536 cost the kernel
  // 5.5 MiB and 2 ms to create for each listener (a full table carried over for a TCP
  // group, from an earlier batond, is dropped: the program is loaded again, that once).
  // With `carried_maps` (Export's answer, in a new batond program), the program uses the
  // maps carried over instead: a socket belongs to one socket array only, and the
  // sockets, routes and flows in them stay as they were. With `carried_program`
  // (ExportProgram's answer) too, and the same program inside this batond, that program
  // is taken over as it is: the kernel's verifier, a few milliseconds per group, does not
  // run again.
  static Result<std::unique_ptr<EbpfProgram>> Load(std::chrono::milliseconds flow_idle, bool datagrams,
                                                   const nlohmann::json* carried_maps = nullptr,
                                                   const nlohmann::json* carried_program = nullptr);
  // Self-upgrade: the maps' descriptors, and the program's, added to `keep`.
  nlohmann::json Export(std::vector<int>* keep) const;
  nlohmann::json ExportProgram(std::vector<int>* keep) const;
  // Whether the maps were carried over (their sockets are in place already), and whether
  // the program was too.
  bool carried() const { return carried_; }
  bool program_carried() const { return program_carried_; }
  // A self-upgrade that gives up: the descriptors carried over stay open, for the previous
  // batond program to take back.
  void Abandon();
  // Closes what Export and ExportProgram carried (classic BPF takes over, or the program
  // was loaded afresh).
  static void CloseCarried(const nlohmann::json* maps, const nlohmann::json* program);
  ~EbpfProgram() = default;
  EbpfProgram(const EbpfProgram&) = delete;
  EbpfProgram& operator=(const EbpfProgram&) = delete;

  // Puts socket `fd` (listening, or bound for UDP, and in the group) at `slot`.
  Status Place(uint32_t slot, int fd);
  // Takes the socket at `slot` out; it is picked no more.
  void Remove(uint32_t slot);
  // New connections and datagrams go to these slots by weight, from now on.
  Status Route(const std::vector<SlotWeight>& targets);
  // Whether a UDP flow kept on `slot` sent a datagram within the flow idle time.
  bool KeepsFlows(uint32_t slot) const;
  // Attaches the program to the group `fd` belongs to, replacing any program there.
  Status Attach(int fd) const;

 private:
  EbpfProgram() = default;
  int MapFd(const char* name) const;
  // The maps' and the program's descriptors, copied out of libbpf's object (closed once
  // loaded) or carried over.
  Status TakeLoaded(bpf_object* object);
  Status TakeCarried(const nlohmann::json& maps, const nlohmann::json& program);

  std::map<std::string, UniqueFd> maps_;
  UniqueFd program_;
  uint32_t active_ = 0;  // which of the two routes is in force
  bool carried_ = false;
  bool program_carried_ = false;
  std::chrono::milliseconds flow_idle_{};
};

}  // namespace baton
