#include "supervisor/steering/service_steering.h"

#include "supervisor/base/log.h"
#include "supervisor/sockets/inherited_sockets.h"

namespace baton {

std::unique_ptr<ServiceSteering> ServiceSteering::Create(ServiceConfig& config, const std::vector<BoundListener>& bound,
                                                         const DaemonConfig& daemon, SocketKeeper* keeper) {
  auto steering = std::unique_ptr<ServiceSteering>(new ServiceSteering());
  steering->keeper_ = keeper;
  steering->AddGroups(config, bound, daemon, {});
  return steering;
}

void ServiceSteering::Rebuild(ServiceConfig& config, const std::vector<BoundListener>& bound,
                              const DaemonConfig& daemon) {
  auto previous = std::move(groups_);
  groups_.clear();
  AddGroups(config, bound, daemon, std::move(previous));
}

void ServiceSteering::AddGroups(ServiceConfig& config, const std::vector<BoundListener>& bound,
                                const DaemonConfig& daemon,
                                std::map<std::string, std::unique_ptr<ReuseportGroup>> reusable) {
  for (size_t i = 0; i < config.listeners.size() && i < bound.size(); ++i) {
    ListenerConfig& l = config.listeners[i];
    if (l.mode != ListenMode::kKernel) continue;
    ListenerConfig as_bound = l;
    as_bound.address = bound[i].address;  // port 0 resolved: every generation binds the same one
    auto it = reusable.find(l.name);
    if (it != reusable.end() && it->second->config().address == as_bound.address) {
      groups_[l.name] = std::move(it->second);
      reusable.erase(it);
      continue;
    }
    auto group = ReuseportGroup::Create(as_bound, bound[i].fd.get(), daemon);
    if (!group.ok()) {
      spdlog::warn("{}: listener {} falls back to one shared socket: {}", config.name, l.name,
                   group.status().message());
      l.mode = ListenMode::kShared;
      continue;
    }
    std::string kept_as = SocketKeeper::ListenerName(config.name, l.name);
    (*group)->KeepIn(keeper_, kept_as);
    (*group)->TakeBackLeftovers(TakeInheritedSockets(kept_as + "/"));
    groups_[l.name] = std::move(*group);
  }
  for (auto& [name, group] : reusable)
    if (group->InUse()) retired_.push_back(std::move(group));
}

Result<std::map<std::string, int>> ServiceSteering::Open(int64_t gen, bool take_anchor) {
  std::map<std::string, int> fds;
  for (auto& [name, group] : groups_) {
    auto fd = group->Open(gen, take_anchor);
    if (!fd.ok()) {
      for (auto& [opened, g] : groups_)
        if (fds.count(opened)) g->Retire(gen);
      return fd.status();
    }
    fds[name] = *fd;
  }
  return fds;
}

void ServiceSteering::Route(const std::vector<GenerationWeight>& weights) {
  weights_ = weights;
  std::vector<std::pair<int64_t, int>> pairs;
  for (const auto& w : weights) pairs.emplace_back(w.generation, w.weight);
  for (auto& [name, group] : groups_)
    if (Status s = group->Route(pairs); !s.ok()) spdlog::error("{}: {}", name, s.message());
}

size_t ServiceSteering::Queued(int64_t gen) const {
  size_t n = 0;
  for (const auto& [name, group] : groups_) n += group->Queued(gen);
  for (const auto& group : retired_) n += group->Queued(gen);
  return n;
}

void ServiceSteering::Release(int64_t gen) {
  for (auto& [name, group] : groups_) group->Release(gen);
  for (auto& group : retired_) group->Release(gen);
}

void ServiceSteering::Retire(int64_t gen) {
  for (auto& [name, group] : groups_) group->Retire(gen);
  for (auto& group : retired_) group->Retire(gen);
  std::erase_if(retired_, [](const auto& g) { return !g->InUse(); });  // closes its sockets: the port is free
}

nlohmann::json ServiceSteering::Export(std::vector<int>* keep) const {
  nlohmann::json groups = nlohmann::json::object();
  for (const auto& [name, group] : groups_) groups[name] = group->Export(keep);
  return {{"groups", std::move(groups)}};
}

Result<std::unique_ptr<ServiceSteering>> ServiceSteering::Adopt(const ServiceConfig& config,
                                                                const std::vector<BoundListener>& bound,
                                                                const nlohmann::json& state, const DaemonConfig& daemon,
                                                                SocketKeeper* keeper) {
  auto steering = std::unique_ptr<ServiceSteering>(new ServiceSteering());
  steering->keeper_ = keeper;
  const nlohmann::json& groups = state.value("groups", nlohmann::json::object());
  for (size_t i = 0; i < config.listeners.size() && i < bound.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    if (l.mode != ListenMode::kKernel || !groups.contains(l.name)) continue;
    ListenerConfig as_bound = l;
    as_bound.address = bound[i].address;
    if (groups[l.name].value("address", "") != as_bound.address.ToString())
      return Status::InvalidArgument("listener '" + l.name + "' was carried over with another address");
    auto group = ReuseportGroup::Adopt(as_bound, groups[l.name], daemon);
    if (!group.ok()) return group.status();
    (*group)->KeepIn(keeper, SocketKeeper::ListenerName(config.name, l.name));
    steering->groups_[l.name] = std::move(*group);
  }
  return steering;
}

nlohmann::json ServiceSteering::Describe(const std::string& name) const {
  auto it = groups_.find(name);
  return it == groups_.end() ? nlohmann::json() : it->second->Describe();
}

}  // namespace baton
