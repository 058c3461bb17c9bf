// One kernel-steered listener: a reuseport group on the listener's address that batond
// owns for its whole run, with a socket per generation in it and a BPF program that picks
// the socket of every new connection (TCP) or datagram (UDP): the eBPF program
// (ebpf_program.h) where the kernel lets batond load it, else a classic BPF program.
//
// The group's first socket, the anchor, is the listener as bound at start: it holds the
// port from start to stop, so it is never free for another process. A generation that
// starts while none is live listens on the anchor itself, so that clients wait in its
// queue meanwhile, as with a shared socket. Every other generation gets a socket of its
// own, which joins the group and receives nothing until Route gives it a share: a
// generation that is not ready gets no connection. A retired generation's socket leaves
// the group once its queue is empty and, with classic BPF, leaving moves no socket that
// traffic goes to (GroupLayout); until then it stays, receiving nothing. Loop thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/base/status.h"
#include "supervisor/base/unique_fd.h"
#include "supervisor/config/config.h"
#include "supervisor/sockets/kept_sockets.h"
#include "supervisor/steering/ebpf_program.h"
#include "supervisor/steering/group_layout.h"

namespace baton {

class ReuseportGroup {
 public:
  // Takes a duplicate of `anchor_fd` (bound with SO_REUSEPORT, listening for TCP) as the
  // group's first socket and attaches a program sending everything to it. Fails when the
  // kernel refuses SO_ATTACH_REUSEPORT_CBPF.
  // `config` names the listener and its address as bound (the port the kernel chose).
  // `program`: kAuto tries eBPF first; kEbpf fails if it cannot be loaded.
  // Takes the program off the group: the listener's socket, if a reload keeps it as a
  // shared one, gets its connections as a plain socket again.
  ~ReuseportGroup();
  static Result<std::unique_ptr<ReuseportGroup>> Create(const ListenerConfig& config, int anchor_fd,
                                                        const DaemonConfig& daemon);
  // The socket generation `gen`'s workers get: with `take_anchor`, the anchor; else a new
  // socket bound to the address, joined at the end of the group, given nothing yet.
  Result<int> Open(int64_t gen, bool take_anchor);
  // New connections go to generations by weight (percent, summing to 100); with no
  // weights, or none for a generation with a socket here, to the anchor.
  Status Route(const std::vector<std::pair<int64_t, int>>& weights);
  // Connections in the generation's accept queue (TCP); 1 while datagrams wait, or with
  // eBPF while a UDP flow it keeps goes on (UDP).
  size_t Queued(int64_t gen) const;
  // Generation `gen` is stopping: with eBPF, its socket is picked no more, not even for
  // the UDP flows it kept (they move to the routed sockets). Classic BPF never picks an
  // unrouted socket anyway.
  void Release(int64_t gen);
  // Generation `gen` has no worker left: its socket leaves the group when it safely can.
  void Retire(int64_t gen);
  // Whether a generation still listens here (on its own socket or the anchor).
  bool InUse() const;
  const ListenerConfig& config() const { return config_; }
  nlohmann::json Describe() const;
  // Self-upgrade: everything Adopt needs, with the group's descriptors added to `keep`.
  nlohmann::json Export(std::vector<int>* keep) const;
  // In the new program: takes over the exported sockets, order and routes; the kernel kept
  // the group and its program throughout.
  // The eBPF program is taken over if it is the one this batond carries, else loaded
  // afresh; the classic one is rebuilt from the carried state.
  static Result<std::unique_ptr<ReuseportGroup>> Adopt(const ListenerConfig& config, const nlohmann::json& state,
                                                       const DaemonConfig& daemon);
  // Each generation's own socket goes into systemd's file descriptor store while it is in
  // the group, as `name`/GENERATION (sockets/kept_sockets.h).
  void KeepIn(SocketKeeper* keeper, std::string name) {
    keeper_ = keeper;
    kept_as_ = std::move(name);
  }
  // After a crash of batond: the generations' sockets systemd kept leave the group. The
  // program, attached anew, sends everything to the anchor, and the connections waiting
  // in them move there (eBPF SELECT_OR_MIGRATE; with classic BPF only where
  // net.ipv4.tcp_migrate_req = 1, else they are reset).
  void TakeBackLeftovers(std::vector<std::pair<std::string, UniqueFd>> sockets);
  // "ebpf" or "cbpf".
  const char* program_name() const { return ebpf_ ? "ebpf" : "cbpf"; }

 private:
  ReuseportGroup(const ListenerConfig& config, UniqueFd anchor) : config_(config), anchor_(std::move(anchor)) {}
  struct Socket {
    UniqueFd fd;
    bool retired = false;
  };
  static constexpr int64_t kAnchor = 0;  // the anchor's id; a generation's socket has its id
  int Fd(int64_t id) const;
  int64_t SocketOf(int64_t gen) const;
  size_t QueuedOn(int fd) const;
  Status LoadProgram(const DaemonConfig& daemon, const nlohmann::json* carried_maps = nullptr,
                     const nlohmann::json* carried_program = nullptr);
  void Abandon();
  Status Attach();
  void Prune();
  uint32_t FreeSlot() const;

  ListenerConfig config_;
  UniqueFd anchor_;
  GroupLayout layout_;
  std::map<int64_t, Socket> sockets_;            // generation id -> its own socket
  int64_t anchor_gen_ = 0;                       // the generation listening on the anchor
  std::vector<std::pair<int64_t, int>> routes_;  // socket id -> weight, as attached
  std::unique_ptr<EbpfProgram> ebpf_;            // null: classic BPF
  std::map<int64_t, uint32_t> slots_;            // eBPF: socket id -> its slot in the program's socket array
  bool anchor_placed_ = false;                   // eBPF: the anchor is in the socket array
  SocketKeeper* keeper_ = nullptr;               // null: systemd keeps nothing for batond
  std::string kept_as_;
};

}  // namespace baton
