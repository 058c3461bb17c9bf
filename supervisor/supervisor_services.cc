// Adding a service: its steering (or the one carried over), its view of the outside world
// (ServiceIo), its proxies, and where its results and output go.
#include <boost/asio/post.hpp>

#include "supervisor/base/log.h"
#include "supervisor/base/system_names.h"
#include "supervisor/config/env_file.h"
#include "supervisor/process/process_memory.h"
#include "supervisor/supervisor.h"

namespace baton {

namespace {

// batond's environment minus what belongs to batond's own parent (socket activation,
// notify socket) and what batond sets per worker.
std::vector<std::pair<std::string, std::string>> BaseEnvironment() {
  auto env = ProcessEnvironment();
  std::erase_if(env, [](const auto& kv) {
    const std::string& key = kv.first;
    return key.rfind("LISTEN_", 0) == 0 || key.rfind("EINHORN_", 0) == 0 || key.rfind("BATON_", 0) == 0 ||
           key == "NOTIFY_SOCKET" || key == "NGINX" || key == "WATCHDOG_USEC" || key == "WATCHDOG_PID";
  });
  return env;
}

}  // namespace

std::vector<ListenerRef> Supervisor::InheritedListeners(const ServiceConfig& svc,
                                                        const std::vector<BoundListener>& bound) {
  std::vector<ListenerRef> refs;
  for (size_t i = 0; i < bound.size() && i < svc.listeners.size(); ++i) {
    const BoundListener& l = bound[i];
    if (svc.listeners[i].inherited())
      refs.push_back(ListenerRef{l.name, l.fd.get(), l.address.is_inet() ? l.address.port : 0, l.address.ToString()});
  }
  return refs;
}

Status Supervisor::AddService(const ServiceConfig& configured, std::vector<BoundListener> listeners) {
  auto slot = std::make_unique<ServiceSlot>(ServiceSlot{
      nullptr, std::move(listeners), LogBuffer(config_.daemon.log_lines), false, {}, {}, nullptr, false, nullptr});
  ServiceSlot* raw = slot.get();
  if (Status s = OpenLogFile(*slot, configured); !s.ok()) return s;
  ServiceConfig svc = configured;  // a listener that cannot be steered falls back to shared
  const CarriedService* carried = carried_ ? carried_->FindService(configured.name) : nullptr;
  if (carried && !carried->steering.is_null()) {
    auto adopted = ServiceSteering::Adopt(svc, slot->listeners, carried->steering, config_.daemon, keeper_.get());
    if (!adopted.ok()) return adopted.status();
    slot->steering = std::move(*adopted);
  } else {
    slot->steering = ServiceSteering::Create(svc, slot->listeners, config_.daemon, keeper_.get());
  }
  ServiceIo sio = IoFor(*slot, svc);
  slot->service =
      std::make_unique<Service>(*clock_, launcher_, probes_, svc, std::move(sio), [this, raw](const ServiceEvent& e) {
        // A backend may have become routable.
        if (e.type == EventType::kReady || e.type == EventType::kPromoted)
          for (auto& p : raw->proxies) p->Resume();
        // A generation with no process left gets no more traffic: its figures go.
        if (e.type == EventType::kGenerationExited)
          for (auto* list : {&raw->proxies, &raw->retired_proxies})
            for (auto& p : *list) p->ForgetGeneration(e.generation);
        // Start order: a service waiting for this one starts now (before systemd hears
        // that nothing is starting any more).
        if (e.type == EventType::kPromoted) StartWaiting();
        Publish(e);
      });
  slot->service->SetNextGenerationId(history_->MaxGeneration(svc.name) + 1);
  StartProxies(*slot);
  services_.push_back(std::move(slot));
  return Status::Ok();
}

// What a service is given of the outside world: its sockets, the notify socket, ports,
// its proxies' connections and traffic, and where its results and output go.
ServiceIo Supervisor::IoFor(ServiceSlot& slot, const ServiceConfig& svc) {
  ServiceIo sio;
  ServiceSlot* raw = &slot;
  sio.steering = slot.steering.get();
  sio.listeners = InheritedListeners(svc, slot.listeners);
  sio.notify_socket = notify_->path();
  sio.base_env = BaseEnvironment();
  sio.pick_probe_port = [this] { return ports_.Next(); };
  sio.port_free = LoopbackPortFree;
  sio.read_env_files = ReadEnvironmentFiles;
  sio.group_rss = [](int pgid) { return ProcessGroupRss(pgid); };
  sio.proxied_connections = [raw](int64_t generation, bool unanswered_only) {
    size_t n = 0;
    for (auto* list : {&raw->proxies, &raw->retired_proxies})
      for (const auto& p : *list) n += p->Connections(generation, unanswered_only);
    return n;
  };
  sio.traffic = [raw](int64_t generation) {
    GenerationTraffic t;
    for (auto* list : {&raw->proxies, &raw->retired_proxies})
      for (const auto& p : *list) {
        ProxyGenerationStats s = p->Stats(generation);
        t.connections += s.connections;
        t.failures += s.failures;
        t.resets += s.resets;
      }
    return t;
  };
  std::string name = svc.name;
  sio.on_result = [this, name](const Release& release, const HandoverResult& result) {
    RecordResult(name, release, result);
  };
  sio.on_replaced = [this, name](const Generation& gen, ReplaceCause cause) {
    if (Status s = history_->NoteReplacement(name, gen.id, ReplaceCauseName(cause)); !s.ok())
      spdlog::error("{}: history not saved: {}", name, s.message());
  };
  sio.on_output = [this, name](const Generation& gen, int pid, OutputStream stream, std::string_view line) {
    OnOutput(name, gen, pid, stream, line);
  };
  return sio;
}

Status Supervisor::OpenLogFile(ServiceSlot& slot, const ServiceConfig& svc) {
  if (svc.log.file.empty()) {
    slot.log_file.reset();
    return Status::Ok();
  }
  if (slot.log_file && slot.log_file->config() == svc.log && slot.log_file->json() == config_.daemon.log_json)
    return Status::Ok();
  auto file = ServiceLogFile::Open(svc.log, config_.daemon.log_json);
  if (!file.ok()) return Status::InvalidArgument("service." + svc.name + ".log: " + file.status().message());
  slot.log_file = std::move(*file);
  return Status::Ok();
}

void Supervisor::ReopenLogs() {
  (void)SetUpDaemonLog(config_.daemon);
  for (auto* list : {&services_, &removing_})
    for (auto& slot : *list)
      if (slot->log_file)
        if (Status s = slot->log_file->Reopen(); !s.ok()) spdlog::error("{}: {}", slot->service->name(), s.message());
  spdlog::info("SIGUSR1: log files opened anew");
}

void Supervisor::RecordResult(const std::string& name, const Release& release, const HandoverResult& result) {
  Status s = history_->Record(name, release, result, clock_->WallSeconds());
  if (s.ok()) {
    history_error_.clear();
    return;
  }
  // Kept in memory: the next write that succeeds saves it too. The file on disk is the
  // previous complete one (written to a temporary file, then renamed).
  history_error_ = s.message();
  spdlog::error("{}: history not saved: {}", name, s.message());
  Publish(ServiceEvent{EventType::kHistoryError, name, result.generation, result.version, 0, s.message(),
                       clock_->WallSeconds()});
}

void Supervisor::StartProxies(ServiceSlot& slot) {
  for (auto& p : slot.proxies) {
    p->StopAccepting();
    if (p->counters().active > 0) slot.retired_proxies.push_back(std::move(p));
  }
  slot.proxies.clear();
  const ServiceConfig& svc = slot.service->config();
  ServiceSlot* raw = &slot;
  for (size_t i = 0; i < slot.listeners.size() && i < svc.listeners.size(); ++i) {
    const ListenerConfig& l = svc.listeners[i];
    if (l.mode != ListenMode::kProxy) continue;
    std::string listener = l.name;
    auto router = [raw, listener](int64_t generation, bool commit) -> std::optional<ProxyRoute> {
      auto backend = raw->service->Backend(listener, generation, commit);
      if (!backend) return std::nullopt;
      return ProxyRoute{backend->first, backend->second};
    };
    auto changed = [this, raw](int64_t generation) {
      raw->service->OnProxyConnectionsChanged(generation);
      // Retired proxies with nothing open go, from the loop rather than their own callback.
      boost::asio::post(
          io_, [raw] { std::erase_if(raw->retired_proxies, [](const auto& p) { return p->counters().active == 0; }); });
    };
    slot.proxies.push_back(std::make_unique<ProxyListener>(io_, svc.name + "." + l.name, slot.listeners[i].fd.get(),
                                                           l.proxy, router, changed));
  }
}

// Workers that run as another user need to reach the notify socket: the state directory
// becomes traversable (not listable) and the socket writable by all. Only workers'
// messages count (the sender's pid comes from the kernel); the rest are ignored.
}  // namespace baton
