// TrafficSteering for one service: a ReuseportGroup for each of its kernel-steered
// listeners, all told the same thing. A reload that changes the listeners hands the groups
// whose address stays to the new set (Rebuild); the others keep serving the generations
// that listen on them and close, freeing their port, once none does. Loop thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/handover/steering.h"
#include "supervisor/sockets/listener_set.h"
#include "supervisor/steering/reuseport_group.h"

namespace baton {

class ServiceSteering : public TrafficSteering {
 public:
  // Groups for the kernel-steered listeners of `config`, bound in `bound` (config order).
  // A listener whose group cannot be set up falls back to a shared socket: its mode in
  // `config` becomes kShared and a warning says why.
  // `daemon` chooses the program (eBPF or classic BPF). With a `keeper`, each generation's
  // socket is kept in systemd's store, and the ones kept before a crash are taken back.
  static std::unique_ptr<ServiceSteering> Create(ServiceConfig& config, const std::vector<BoundListener>& bound,
                                                 const DaemonConfig& daemon, SocketKeeper* keeper);
  // The same after a reload: groups whose listener keeps its name and address carry on.
  void Rebuild(ServiceConfig& config, const std::vector<BoundListener>& bound, const DaemonConfig& daemon);
  bool empty() const { return groups_.empty() && retired_.empty(); }

  Result<std::map<std::string, int>> Open(int64_t gen, bool take_anchor) override;
  void Route(const std::vector<GenerationWeight>& weights) override;
  size_t Queued(int64_t gen) const override;
  void Release(int64_t gen) override;
  void Retire(int64_t gen) override;
  // The steering of listener `name` for the status, or null when it has none.
  nlohmann::json Describe(const std::string& name) const;
  // Self-upgrade: the groups, with their descriptors added to `keep`; and taking them over
  // in the new program, for the kernel-steered listeners of `config`.
  nlohmann::json Export(std::vector<int>* keep) const;
  static Result<std::unique_ptr<ServiceSteering>> Adopt(const ServiceConfig& config,
                                                        const std::vector<BoundListener>& bound,
                                                        const nlohmann::json& state, const DaemonConfig& daemon,
                                                        SocketKeeper* keeper);

 private:
  void AddGroups(ServiceConfig& config, const std::vector<BoundListener>& bound, const DaemonConfig& daemon,
                 std::map<std::string, std::unique_ptr<ReuseportGroup>> reusable);
  std::map<std::string, std::unique_ptr<ReuseportGroup>> groups_;  // by listener name
  std::vector<std::unique_ptr<ReuseportGroup>> retired_;           // dropped by a reload, still in use
  std::vector<GenerationWeight> weights_;                          // as last routed
  SocketKeeper* keeper_ = nullptr;
};

}  // namespace baton
