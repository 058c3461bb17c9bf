// Supervisor as Commands: what the control API may ask of the daemon.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <boost/asio/post.hpp>

#include "supervisor/base/log.h"
#include "supervisor/control/metrics.h"
#include "supervisor/supervisor.h"

namespace baton {

namespace {

Status NoService(const std::string& name) { return Status::NotFound("no service named '" + name + "'"); }

// On Linux 6.2 and later, the size of /proc/self/fd is the number of open descriptors:
// one stat, where listing the directory took most of a status's time with thousands.
size_t OpenFds() {
  struct stat st {};
  if (::stat("/proc/self/fd", &st) == 0 && st.st_size > 0) return static_cast<size_t>(st.st_size);
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::end(it);
       it.increment(ec))
    ++n;
  return n;
}

long ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

nlohmann::json Supervisor::DescribeDaemon() {
  return {{"pid", ::getpid()},
          {"version", BATON_VERSION},
          {"binary", own_binary_},
          {"self_upgrade", self_upgrade_},
          {"started_at", started_wall_},
          {"uptime_s", clock_->WallSeconds() - started_wall_},
          {"config", config_.path},
          {"state", stopping_ ? "stopping" : "running"},
          {"open_fds", OpenFds()},
          {"rss_bytes", ResidentBytes()},
          {"notify_ignored", notify_ignored_},
          {"orphans_reaped", orphans_reaped_},
          {"handler_exceptions", handler_exceptions_},
          {"history_error", history_error_.empty() ? nlohmann::json() : nlohmann::json(history_error_)},
          {"control_refused", control_ ? control_->refused() : 0},
          {"control_shed", control_ ? control_->shed() : 0},
          {"streams", subscribers_.size() + log_followers_.size()},
          {"health", config_.daemon.health ? nlohmann::json(config_.daemon.health->ToString()) : nlohmann::json()},
          {"web", config_.daemon.web ? nlohmann::json(config_.daemon.web->ToString()) : nlohmann::json()}};
}

void Supervisor::WriteServices(JsonWriter& out, bool usage) const {
  out.Key("services").BeginArray();
  for (const auto& s : services_) WriteServiceStatus(*s, out, usage);
  out.EndArray();
}

std::string Supervisor::StatusText(bool with_usage) {
  JsonWriter out;
  out.Reserve(status_size_ + status_size_ / 8 + 64);  // about the last one's size, and the answer's newline
  out.BeginObject().Key("daemon").Value(DescribeDaemon());
  WriteServices(out, with_usage);
  out.Key("tunnels").Value(DescribeTunnels()).EndObject();
  status_size_ = out.text().size();
  return out.Take();
}

std::string Supervisor::ServicesText() {
  JsonWriter out;
  out.BeginObject();
  WriteServices(out, false);
  out.EndObject();
  return out.Take();
}

Result<std::string> Supervisor::ServiceStatusText(const std::string& service) {
  ServiceSlot* s = Find(service);
  if (!s) return NoService(service);
  JsonWriter out;
  WriteServiceStatus(*s, out, false);
  return out.Take();
}

void Supervisor::WriteServiceStatus(const ServiceSlot& slot, JsonWriter& out, bool usage) const {
  nlohmann::json j = slot.service->DescribeFields();
  const auto& configured = slot.service->config().listeners;
  nlohmann::json proxies = nlohmann::json::array();
  for (const auto& p : slot.proxies) {
    std::string address;
    for (size_t i = 0; i < configured.size() && i < slot.listeners.size(); ++i)
      if (slot.service->name() + "." + configured[i].name == p->name()) address = slot.listeners[i].address.ToString();
    const ProxyCounters& c = p->counters();
    proxies.push_back({{"name", p->name().substr(slot.service->name().size() + 1)},
                       {"address", address},
                       {"paused", p->paused()},
                       {"active", c.active},
                       {"total", c.total},
                       {"errors", c.errors},
                       {"retries", c.retries},
                       {"resets", c.resets},
                       {"idle_closed", c.idle_closed},
                       {"bytes_in", c.bytes_in},
                       {"bytes_out", c.bytes_out}});
  }
  j["proxies"] = std::move(proxies);
  // Every listener with how its connections reach the workers: kernel, shared or proxy.
  nlohmann::json listeners = nlohmann::json::array();
  for (size_t i = 0; i < configured.size() && i < slot.listeners.size(); ++i) {
    nlohmann::json l = {{"name", configured[i].name},
                        {"address", slot.listeners[i].address.ToString()},
                        {"mode", ListenModeName(configured[i].mode)}};
    if (configured[i].mode == ListenMode::kKernel) l["steering"] = slot.steering->Describe(configured[i].name);
    listeners.push_back(std::move(l));
  }
  j["listeners"] = std::move(listeners);
  Service::ProxiedConnections proxied;
  if (!slot.proxies.empty())
    proxied = [&slot](int64_t generation) {
      size_t open = 0;
      for (const auto* list : {&slot.proxies, &slot.retired_proxies})
        for (const auto& p : *list) open += p->Connections(generation);
      return open;
    };
  out.BeginObject().Members(j).Key("generations");
  Service::WorkerUsage read_usage;
  if (usage) read_usage = [](int pid) { return ReadProcessUsage(pid); };
  slot.service->WriteGenerations(out, proxied, read_usage);
  out.EndObject();
}

Result<nlohmann::json> Supervisor::History(const std::string& service) {
  if (!Find(service)) return NoService(service);
  return nlohmann::json{{"service", service}, {"releases", history_->Entries(service)}};
}

Status Supervisor::RunHandover(Service& svc, const Release& release, HandoverKind kind, Progress progress, Done done) {
  uint64_t id = next_subscriber_++;
  int64_t old = svc.live() ? svc.live()->id : 0;
  Status s = svc.Handover(release, kind, [this, id, done](const HandoverResult& r) {
    subscribers_.erase(id);
    done(r);
  });
  if (!s.ok()) return s;
  // Progress is what happens to the new generation and the old one; other generations'
  // events (an earlier drain still finishing) would only confuse.
  std::string name = svc.name();
  int64_t gen = svc.pending_generation();
  subscribers_[id] = [name, gen, old, progress](const ServiceEvent& e) {
    if (e.service == name && progress && (e.generation == gen || (old && e.generation == old))) progress(e);
  };
  return s;
}

Status Supervisor::Upgrade(const std::string& service, const UpgradeRequest& request, Progress progress, Done done) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  Release release{request.version, request.command, request.env, clock_->WallSeconds()};
  return RunHandover(*slot->service, release, HandoverKind::kUpgrade, std::move(progress), std::move(done));
}

Status Supervisor::Rollback(const std::string& service, const std::optional<std::string>& to, Progress progress,
                            Done done) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  const Generation* live = slot->service->live();
  if (slot->service->progressive_running() && !to) {
    // The old generation never stopped serving: rolling back is giving up on the new one.
    HandoverResult result;
    result.promoted = true;
    result.kind = HandoverKind::kRollback;
    result.version = live ? live->release.version : "";
    result.generation = live ? live->id : 0;
    // (No from_generation: nothing drains, the abandoned generation is stopped as failed.)
    if (const Generation* abandoned = slot->service->pending()) result.from_version = abandoned->release.version;
    if (Status s = slot->service->Abort("rolled back by the operator"); !s.ok()) return s;
    boost::asio::post(io_, [done = std::move(done), result] { done(result); });
    return Status::Ok();
  }
  std::optional<Release> target;
  if (to) {
    target = history_->Find(service, *to);
    if (!target)
      return Status::NotFound("service '" + service + "' has no release with version '" + *to + "' in its history");
  } else {
    target = history_->PreviousPromoted(service, live ? live->release.version : "");
    if (!target)
      return Status::FailedPrecondition("service '" + service + "' has no earlier promoted release to roll back to");
  }
  target->created_at = clock_->WallSeconds();
  return RunHandover(*slot->service, *target, HandoverKind::kRollback, std::move(progress), std::move(done));
}

Result<nlohmann::json> Supervisor::PromoteRollout(const std::string& service) {
  return OnRollout(service, "promote", &Service::PromoteNow);
}

Result<nlohmann::json> Supervisor::PauseRollout(const std::string& service) {
  return OnRollout(service, "pause", &Service::Pause);
}

Result<nlohmann::json> Supervisor::ResumeRollout(const std::string& service) {
  return OnRollout(service, "resume", &Service::Resume);
}

Result<nlohmann::json> Supervisor::OnRollout(const std::string& service, const char* action, Status (Service::*act)()) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  Service& svc = *slot->service;
  if (Status s = (svc.*act)(); !s.ok()) return s;
  return nlohmann::json{{"service", service}, {"action", action}, {"state", svc.StateName()}};
}

Status Supervisor::Restart(const std::string& service, Progress progress, Done done) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  const Generation* live = slot->service->live();
  if (!live) return Status::FailedPrecondition("service '" + service + "' has nothing running to restart; use start");
  return RunHandover(*slot->service, live->release, HandoverKind::kRestart, std::move(progress), std::move(done));
}

Status Supervisor::Start(const std::string& service, Progress progress, Done done) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  if (slot->service->live()) return Status::FailedPrecondition("service '" + service + "' is already running");
  slot->started = true;  // the operator's word goes before the start order
  slot->service->WaitFor({});
  Release release{slot->service->config().version, std::nullopt, {}, clock_->WallSeconds()};
  if (auto last = history_->LastPromoted(service)) release = *last;
  return RunHandover(*slot->service, release, HandoverKind::kStart, std::move(progress), std::move(done));
}

Status Supervisor::Stop(const std::string& service, Progress progress, std::function<void()> done) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  uint64_t id = Subscribe([service, progress](const ServiceEvent& e) {
    if (e.service == service && progress) progress(e);
  });
  Status s = slot->service->Stop([this, id, done] {
    subscribers_.erase(id);
    done();
  });
  if (!s.ok()) subscribers_.erase(id);
  return s;
}

Result<nlohmann::json> Supervisor::Scale(const std::string& service, int replicas) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  if (Status s = slot->service->Scale(replicas); !s.ok()) return s;
  return nlohmann::json{{"service", service}, {"replicas", replicas}};
}

Result<nlohmann::json> Supervisor::Recycle(const std::string& service) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  auto count = slot->service->Recycle();
  if (!count.ok()) return count.status();
  return nlohmann::json{{"service", service}, {"workers", *count}};
}

Result<nlohmann::json> Supervisor::Signal(const std::string& service, const std::string& signal) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  int sig = ParseSignal(signal);
  if (sig <= 0) return Status::InvalidArgument("unknown signal '" + signal + "'");
  int n = slot->service->Signal(sig);
  spdlog::info("{}: sent {} to {} worker(s) on request", service, SignalName(sig), n);
  return nlohmann::json{{"service", service}, {"signal", SignalName(sig)}, {"workers", n}};
}

Result<nlohmann::json> Supervisor::Logs(const std::string& service, size_t lines) {
  ServiceSlot* slot = Find(service);
  if (!slot) return NoService(service);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : slot->logs.Last(lines)) out.push_back(l.ToJson(service));
  return nlohmann::json{{"service", service}, {"lines", std::move(out)}, {"dropped", slot->logs.dropped()}};
}

Result<uint64_t> Supervisor::FollowLogs(const std::string& service, Line line) {
  if (!Find(service)) return NoService(service);
  uint64_t id = next_subscriber_++;
  log_followers_[id] = {service, std::move(line)};
  return id;
}

uint64_t Supervisor::FollowEvents(Line line) {
  return Subscribe([line](const ServiceEvent& e) { line(e.ToJson()); });
}

Result<uint64_t> Supervisor::FollowStatus(Duration interval, std::function<void(std::string)> text) {
  uint64_t id = next_subscriber_++;
  auto& feed = status_feeds_[id];
  feed = std::make_unique<StatusFeed>(*clock_, interval, [this, text] { text(StatusText(true)); });
  // By id, not by pointer: Publish calls a copy of the subscribers, and one of them may end
  // this stream first.
  subscribers_[id] = [this, id](const ServiceEvent&) {
    if (auto it = status_feeds_.find(id); it != status_feeds_.end()) it->second->Changed();
  };
  feed->Start();
  return id;
}

void Supervisor::Unsubscribe(uint64_t id) {
  subscribers_.erase(id);
  log_followers_.erase(id);
  status_feeds_.erase(id);
}

Result<nlohmann::json> Supervisor::Dashboard() {
  if (!web_) return Status::NotFound("no dashboard: set [daemon] web, such as web = \"tcp://127.0.0.1:9181\"");
  return nlohmann::json{{"url", web_->Url()}, {"read_only", web_->read_only()}};
}

std::string Supervisor::Metrics() { return RenderMetrics(nlohmann::json::parse(StatusText(false))); }

}  // namespace baton
