#include "supervisor/steering/reuseport_group.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "supervisor/base/log.h"
#include "supervisor/sockets/listener_set.h"
#include "supervisor/steering/cbpf_program.h"

namespace baton {

Result<std::unique_ptr<ReuseportGroup>> ReuseportGroup::Create(const ListenerConfig& config, int anchor_fd,
                                                               const DaemonConfig& daemon) {
  int reuseport = 0;
  socklen_t len = sizeof reuseport;
  if (::getsockopt(anchor_fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len) != 0 || !reuseport)
    return Status::FailedPrecondition(
        "its socket was bound without SO_REUSEPORT (a shared listener kept by a reload); kernel steering starts "
        "when batond next binds the address (a restart of batond, or a reload that changes the address)");
  UniqueFd anchor(::fcntl(anchor_fd, F_DUPFD_CLOEXEC, 3));
  if (!anchor) return Status::FromErrno("duplicate listener '" + config.name + "'", errno);
  auto group = std::unique_ptr<ReuseportGroup>(new ReuseportGroup(config, std::move(anchor)));
  group->layout_.Join(kAnchor);
  if (Status s = group->LoadProgram(daemon); !s.ok()) return s;
  if (group->ebpf_) group->slots_[kAnchor] = 0;
  if (Status s = group->Attach(); !s.ok()) return s;
  return group;
}

// eBPF unless the config asks for classic BPF; with "auto", classic BPF where the kernel
// refuses eBPF (batond without CAP_BPF, say).
Status ReuseportGroup::LoadProgram(const DaemonConfig& daemon, const nlohmann::json* carried_maps,
                                   const nlohmann::json* carried_program) {
  if (daemon.steering_program == SteeringProgram::kCbpf) return Status::Ok();
  auto program = EbpfProgram::Load(daemon.udp_flow_idle, !config_.address.is_stream(), carried_maps, carried_program);
  if (program.ok()) {
    ebpf_ = std::move(*program);
    return Status::Ok();
  }
  if (daemon.steering_program == SteeringProgram::kEbpf) return program.status();
  spdlog::info("{}: classic BPF steering: {}", config_.name, program.status().message());
  return Status::Ok();
}

Result<int> ReuseportGroup::Open(int64_t gen, bool take_anchor) {
  // Also when no generation listens here (a listener a reload added): connections wait
  // in the anchor, and this generation is the one to take them.
  if (take_anchor || !InUse()) {
    anchor_gen_ = gen;
    return anchor_.get();
  }
  uint32_t slot = FreeSlot();
  if (ebpf_ && slot >= EbpfProgram::kSlots)
    return Status::Failed("listener '" + config_.name + "': no free slot in the steering program (" +
                          std::to_string(EbpfProgram::kSlots) + " sockets)");
  auto bound = BindListener(config_);  // SO_REUSEPORT: joins the group at listen() (TCP) or bind() (UDP)
  if (!bound.ok()) return bound.status();
  int fd = bound->fd.get();
  if (ebpf_) {
    // Placed in the socket array, but in no route: it gets nothing yet.
    if (Status s = ebpf_->Place(slot, fd); !s.ok()) return s;  // its socket closes: it leaves the group
    slots_[gen] = slot;
  }
  layout_.Join(gen);
  sockets_[gen] = Socket{std::move(bound->fd), false};
  if (keeper_) keeper_->Keep(SocketKeeper::GenerationSocketName(kept_as_, gen), fd);
  return fd;
}

void ReuseportGroup::TakeBackLeftovers(std::vector<std::pair<std::string, UniqueFd>> sockets) {
  for (auto& [name, fd] : sockets) {
    size_t queued = QueuedOn(fd.get());
    if (config_.address.is_stream()) ::shutdown(fd.get(), SHUT_RD);  // leaves the group now; systemd's copy later
    if (keeper_) keeper_->Forget(name);
    std::string fate;  // of the connections waiting in it (a UDP socket's datagrams are dropped)
    if (queued > 0 && config_.address.is_stream())
      fate = "; its " + std::to_string(queued) + " waiting connection(s) " +
             (ebpf_ ? "move to the anchor" : "are reset unless net.ipv4.tcp_migrate_req = 1");
    spdlog::info("{}: {} from before the restart leaves the group{}", config_.name, name, fate);
  }
}

uint32_t ReuseportGroup::FreeSlot() const {
  std::set<uint32_t> used;
  for (const auto& [id, slot] : slots_) used.insert(slot);
  uint32_t slot = 0;
  while (used.count(slot)) ++slot;
  return slot;
}

Status ReuseportGroup::Route(const std::vector<std::pair<int64_t, int>>& weights) {
  routes_.clear();
  for (const auto& [gen, weight] : weights) {
    int64_t id = SocketOf(gen);
    if (weight > 0 && (id == kAnchor ? gen == anchor_gen_ : sockets_.count(id))) routes_.emplace_back(id, weight);
  }
  int total = 0;
  for (const auto& r : routes_) total += r.second;
  if (total == 0) {
    routes_ = {{kAnchor, 100}};
  } else if (total != 100) {
    // Some generation has no socket here (it started before a reload added the
    // listener): the others share its part in proportion.
    int given = 0;
    for (auto& r : routes_) given += (r.second = r.second * 100 / total);
    routes_.back().second += 100 - given;
  }
  Status s = Attach();
  Prune();
  return s;
}

size_t ReuseportGroup::Queued(int64_t gen) const {
  int64_t id = SocketOf(gen);
  if (id != kAnchor && !sockets_.count(id)) return 0;
  if (size_t queued = QueuedOn(Fd(id)); queued > 0) return queued;
  // eBPF keeps UDP flows with their generation: it is held while one of them goes on.
  bool keeps_flows = ebpf_ && !config_.address.is_stream() && slots_.count(id) && ebpf_->KeepsFlows(slots_.at(id));
  return keeps_flows ? 1 : 0;
}

void ReuseportGroup::Release(int64_t gen) {
  int64_t id = SocketOf(gen);
  bool routed = false;
  for (const auto& r : routes_) routed |= r.first == id;
  if (!ebpf_ || routed || !slots_.count(id)) return;
  ebpf_->Remove(slots_.at(id));
  if (id == kAnchor) anchor_placed_ = false;  // back in the array when traffic goes to it again (Attach)
}

void ReuseportGroup::Retire(int64_t gen) {
  if (gen == anchor_gen_) anchor_gen_ = 0;  // the anchor stays: it holds the port
  auto it = sockets_.find(gen);
  if (it != sockets_.end()) it->second.retired = true;
  Prune();
}

bool ReuseportGroup::InUse() const {
  if (anchor_gen_) return true;
  for (const auto& [gen, socket] : sockets_)
    if (!socket.retired) return true;
  return false;
}

nlohmann::json ReuseportGroup::Describe() const {
  nlohmann::json sockets = nlohmann::json::array();
  const auto& members = layout_.members();
  for (size_t i = 0; i < members.size(); ++i) {
    int64_t id = members[i];
    int weight = 0;
    for (const auto& r : routes_)
      if (r.first == id) weight = r.second;
    nlohmann::json s = {{"index", i}, {"weight", weight}, {"queued", QueuedOn(Fd(id))}};
    if (ebpf_) s["slot"] = slots_.at(id);
    if (id == kAnchor) {
      s["anchor"] = true;
      if (anchor_gen_) s["generation"] = anchor_gen_;
    } else {
      s["generation"] = id;
      s["retired"] = sockets_.at(id).retired;
    }
    sockets.push_back(std::move(s));
  }
  nlohmann::json out = {{"program", program_name()}, {"sockets", std::move(sockets)}};
  if (ebpf_ && ebpf_->program_carried()) out["program_carried"] = true;  // by a self-upgrade, not verified again
  return out;
}

nlohmann::json ReuseportGroup::Export(std::vector<int>* keep) const {
  nlohmann::json sockets = nlohmann::json::array();
  keep->push_back(anchor_.get());
  for (const auto& [gen, socket] : sockets_) {
    keep->push_back(socket.fd.get());
    sockets.push_back({{"generation", gen}, {"fd", socket.fd.get()}, {"retired", socket.retired}});
  }
  return {{"address", config_.address.ToString()},
          {"anchor_fd", anchor_.get()},
          {"anchor_generation", anchor_gen_},
          {"members", layout_.members()},
          {"sockets", std::move(sockets)},
          {"routes", routes_},
          {"slots", slots_},
          {"anchor_placed", anchor_placed_},
          {"ebpf_maps", ebpf_ ? ebpf_->Export(keep) : nlohmann::json()},
          {"ebpf_program", ebpf_ ? ebpf_->ExportProgram(keep) : nlohmann::json()}};
}

Result<std::unique_ptr<ReuseportGroup>> ReuseportGroup::Adopt(const ListenerConfig& config, const nlohmann::json& state,
                                                              const DaemonConfig& daemon) {
  // Whatever fails, the descriptors stay open for the previous program to take back.
  std::unique_ptr<ReuseportGroup> group;
  auto fail = [&](Status s) {
    if (group) group->Abandon();
    return s;
  };
  try {
    group.reset(new ReuseportGroup(config, UniqueFd(state.at("anchor_fd").get<int>())));
    group->anchor_gen_ = state.at("anchor_generation").get<int64_t>();
    for (const auto& s : state.at("sockets"))
      group->sockets_[s.at("generation").get<int64_t>()] =
          Socket{UniqueFd(s.at("fd").get<int>()), s.at("retired").get<bool>()};
    for (int64_t id : state.at("members").get<std::vector<int64_t>>()) {
      if (id != kAnchor && !group->sockets_.count(id))
        return fail(
            Status::InvalidArgument("listener '" + config.name + "': member " + std::to_string(id) + " has no socket"));
      group->layout_.Join(id);
    }
    group->routes_ = state.at("routes").get<std::vector<std::pair<int64_t, int>>>();
    for (const auto& [id, weight] : group->routes_)
      if (!group->layout_.IndexOf(id))
        return fail(Status::InvalidArgument("listener '" + config.name + "': route to a socket not in the group"));
    // eBPF: the carried maps hold the sockets at their slots (a socket can be in one socket
    // array only); else every socket goes into the new program's array before the program
    // replaces the classic one.
    const nlohmann::json* maps =
        state.contains("ebpf_maps") && state["ebpf_maps"].is_object() ? &state["ebpf_maps"] : nullptr;
    const nlohmann::json* program =
        state.contains("ebpf_program") && state["ebpf_program"].is_object() ? &state["ebpf_program"] : nullptr;
    if (Status s = group->LoadProgram(daemon, maps, program); !s.ok()) return fail(s);
    if (group->ebpf_) {
      auto carried = state.value("slots", std::map<int64_t, uint32_t>());
      for (int64_t id : group->layout_.members()) {
        auto it = carried.find(id);
        if (group->ebpf_->carried()) {
          if (it == carried.end() || it->second >= EbpfProgram::kSlots)
            return fail(Status::InvalidArgument("listener '" + config.name + "': a socket without its slot"));
          group->slots_[id] = it->second;
          if (id == kAnchor) group->anchor_placed_ = state.value("anchor_placed", false);
          continue;
        }
        if (Status s = group->ebpf_->Place(group->slots_[id] = group->FreeSlot(), group->Fd(id)); !s.ok())
          return fail(s);
        if (id == kAnchor) group->anchor_placed_ = true;
      }
    } else {
      EbpfProgram::CloseCarried(maps, program);  // the eBPF program gives way to classic BPF
    }
    if (Status s = group->Attach(); !s.ok()) return fail(s);
    return group;
  } catch (const nlohmann::json::exception& e) {
    return fail(Status::InvalidArgument("listener '" + config.name + "': malformed steering state: " + e.what()));
  }
}

ReuseportGroup::~ReuseportGroup() {
  if (anchor_) ::setsockopt(anchor_.get(), SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, nullptr, 0);
}

// A self-upgrade that fails hands the descriptors back to the previous program: they
// must stay open, and the group keeps its program.
void ReuseportGroup::Abandon() {
  (void)anchor_.ReleaseOwnership();
  for (auto& [gen, socket] : sockets_) (void)socket.fd.ReleaseOwnership();
  if (ebpf_) ebpf_->Abandon();
}

int ReuseportGroup::Fd(int64_t id) const { return id == kAnchor ? anchor_.get() : sockets_.at(id).fd.get(); }

int64_t ReuseportGroup::SocketOf(int64_t gen) const {
  return gen != 0 && gen == anchor_gen_ && !sockets_.count(gen) ? kAnchor : gen;
}

size_t ReuseportGroup::QueuedOn(int fd) const {
  if (config_.address.is_stream()) {
    tcp_info info{};
    socklen_t len = sizeof info;
    // On a listening socket, tcpi_unacked is the accept queue's current length.
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    return info.tcpi_unacked;
  }
  int bytes = 0;
  return ::ioctl(fd, FIONREAD, &bytes) == 0 && bytes > 0 ? 1 : 0;
}

Status ReuseportGroup::Attach() {
  const auto routes = routes_.empty() ? std::vector<std::pair<int64_t, int>>{{kAnchor, 100}} : routes_;
  if (ebpf_) {
    std::vector<SlotWeight> targets;
    for (const auto& [id, weight] : routes) {
      if (id == kAnchor && !anchor_placed_) {
        if (Status s = ebpf_->Place(slots_.at(kAnchor), anchor_.get()); !s.ok()) return s;
        anchor_placed_ = true;
      }
      targets.push_back({slots_.at(id), weight});
    }
    if (Status s = ebpf_->Route(targets); !s.ok()) return s;
    return ebpf_->Attach(anchor_.get());  // the same program again, after the first time
  }
  std::vector<SteeringTarget> targets;
  for (const auto& [id, weight] : routes) targets.push_back({*layout_.IndexOf(id), weight});
  std::vector<sock_filter> program = BuildSteeringProgram(targets);
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  if (::setsockopt(anchor_.get(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog) != 0)
    return Status::FromErrno("attach the steering program to listener '" + config_.name + "'", errno);
  return Status::Ok();
}

// Removes the retired sockets whose leaving moves no socket that traffic goes to (with
// eBPF, any: it addresses sockets by slot). shutdown(SHUT_RD) takes a TCP listener out of
// the group at once, whoever else still holds it; a UDP socket leaves with its last
// descriptor, ours, since its workers have exited.
void ReuseportGroup::Prune() {
  std::set<int64_t> routed;
  for (const auto& r : routes_) routed.insert(r.first);
  bool removed = true, any = false;
  while (removed) {
    removed = false;
    for (auto it = sockets_.begin(); it != sockets_.end(); ++it) {
      if (!it->second.retired || (!ebpf_ && !layout_.CanLeave(it->first, routed))) continue;
      // Nobody accepts from it any more: a connection that reached it after the drain
      // checked its queue (a handshake finishing late) is moved to a routed socket by the
      // eBPF program (SELECT_OR_MIGRATE), or else reset now, not left to hang.
      if (size_t queued = QueuedOn(it->second.fd.get()); queued > 0)
        spdlog::warn("{}: generation {} left {} connection(s) in its queue; they are {}", config_.name, it->first,
                     queued, ebpf_ ? "moved to the routed generation" : "reset");
      if (ebpf_) {
        ebpf_->Remove(slots_.at(it->first));
        slots_.erase(it->first);
      }
      if (config_.address.is_stream()) ::shutdown(it->second.fd.get(), SHUT_RD);
      if (keeper_) keeper_->Forget(SocketKeeper::GenerationSocketName(kept_as_, it->first));
      layout_.Leave(it->first);
      sockets_.erase(it);
      removed = any = true;
      break;
    }
  }
  // The routed sockets kept their places; the program is rebuilt from the new order anyway.
  if (!any) return;
  if (Status s = Attach(); !s.ok()) spdlog::error("{}: {}", config_.name, s.message());
}

}  // namespace baton
