// A Commands that records what the control API asked for and answers with fixed values:
// for the API's unit tests and its fuzz target.
#pragma once

#include "supervisor/control/api.h"

namespace baton::testing {

struct FakeCommands : Commands {
  std::string StatusText(bool with_usage) override {
    status_usage = with_usage;
    return R"({"daemon":{"pid":1},"services":[{"name":"web"}]})";
  }
  std::string ServicesText() override { return R"({"services":[{"name":"web"}]})"; }
  Result<std::string> ServiceStatusText(const std::string& s) override {
    if (s != "web") return Status::NotFound("no service named '" + s + "'");
    return std::string(R"({"name":"web"})");
  }
  Result<nlohmann::json> History(const std::string& s) override { return nlohmann::json{{"service", s}}; }
  Status Upgrade(const std::string& s, const UpgradeRequest& r, Progress p, Done d) override {
    if (s != "web") return Status::NotFound("no service named '" + s + "'");
    if (busy) return Status::Conflict("an upgrade is already in progress");
    last_upgrade = r;
    progress = std::move(p);
    done = std::move(d);
    return Status::Ok();
  }
  Status Rollback(const std::string& s, const std::optional<std::string>& to, Progress p, Done d) override {
    rollback_to = to;
    done = std::move(d);
    return Status::Ok();
  }
  Status Restart(const std::string& s, Progress p, Done d) override {
    calls.push_back("restart " + s);
    done = std::move(d);
    return Status::Ok();
  }
  Status Start(const std::string& s, Progress p, Done d) override {
    calls.push_back("start " + s);
    done = std::move(d);
    return Status::Ok();
  }
  Status Stop(const std::string& s, Progress p, std::function<void()> d) override {
    calls.push_back("stop " + s);
    stopped = std::move(d);
    return Status::Ok();
  }
  Result<nlohmann::json> Scale(const std::string& s, int replicas) override {
    calls.push_back("scale " + s + " " + std::to_string(replicas));
    return nlohmann::json{{"replicas", replicas}};
  }
  Result<nlohmann::json> Recycle(const std::string& s) override {
    calls.push_back("recycle " + s);
    return nlohmann::json{{"workers", 2}};
  }
  Result<nlohmann::json> PromoteRollout(const std::string& s) override { return Rollout("promote", s); }
  Result<nlohmann::json> PauseRollout(const std::string& s) override { return Rollout("pause", s); }
  Result<nlohmann::json> ResumeRollout(const std::string& s) override { return Rollout("resume", s); }
  Result<nlohmann::json> Rollout(const std::string& action, const std::string& s) {
    calls.push_back(action + " " + s);
    if (s != "web") return Status::NotFound("no service named '" + s + "'");
    if (!busy) return Status::FailedPrecondition("no progressive handover of 'web' is running");
    return nlohmann::json{{"action", action}};
  }
  Result<nlohmann::json> Signal(const std::string& s, const std::string& sig) override {
    calls.push_back("signal " + s + " " + sig);
    return nlohmann::json{{"signal", sig}};
  }
  Result<nlohmann::json> Logs(const std::string& s, size_t n) override {
    calls.push_back("logs " + s + " " + std::to_string(n));
    return nlohmann::json{{"lines", {{{"line", "old"}}}}};
  }
  Result<uint64_t> FollowLogs(const std::string& s, Line line) override {
    follower = std::move(line);
    return uint64_t{7};
  }
  uint64_t FollowEvents(Line line) override {
    follower = std::move(line);
    return 9;
  }
  Result<uint64_t> FollowStatus(Duration interval, std::function<void(std::string)> text) override {
    status_interval = interval;
    status_follower = std::move(text);
    return uint64_t{11};
  }
  void Unsubscribe(uint64_t id) override { unsubscribed.push_back(id); }
  Result<nlohmann::json> Reload() override {
    if (reload_error) return Status::InvalidArgument("baton.toml:3:1: service.x.foo: unknown key");
    return nlohmann::json{{"added", {"x"}}};
  }
  std::string Metrics() override { return "baton_daemon_uptime_seconds 1\n"; }
  Result<nlohmann::json> Dashboard() override {
    if (!web) return Status::NotFound("no dashboard: set [daemon] web");
    return nlohmann::json{{"url", "http://127.0.0.1:9181/#token=abc"}, {"read_only", false}};
  }
  Status SelfUpgrade(const std::string& binary, SelfUpgradeAccepted accepted) override {
    if (busy) return Status::Conflict("self-upgrade refused: service 'web': generation 3 is draining");
    self_upgrade_binary = binary;
    self_upgrade_accepted = std::move(accepted);
    return Status::Ok();
  }

  bool busy = false;
  bool web = false;
  bool status_usage = false;
  std::optional<Duration> status_interval;
  std::function<void(std::string)> status_follower;
  bool reload_error = false;
  std::vector<std::string> calls;
  std::function<void()> stopped;
  Line follower;
  std::vector<uint64_t> unsubscribed;
  std::optional<UpgradeRequest> last_upgrade;
  std::optional<std::string> rollback_to;
  Progress progress;
  Done done;
  std::optional<std::string> self_upgrade_binary;
  SelfUpgradeAccepted self_upgrade_accepted;
};

}  // namespace baton::testing
