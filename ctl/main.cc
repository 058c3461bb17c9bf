// batonctl: drives batond over its control socket. See batonctl(1).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "ctl/client.h"
#include "ctl/format.h"
#include "ctl/top.h"
#include "supervisor/control/protocol.h"

namespace {

using baton::ctl::Str;
namespace protocol = baton::protocol;
using protocol::ServiceAction;

// Exit codes, documented in batonctl(1).
constexpr int kExitFailed = 1;  // the operation ran and failed (new version not promoted)
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;  // no batond on the socket
constexpr int kExitNotFound = 4;     // no such service or release
constexpr int kExitRefused = 5;      // batond refused the request (conflict, bad argument, forbidden)

struct Options {
  std::string socket;
  bool json = false;
};

double Now() { return static_cast<double>(std::time(nullptr)); }

// An event line of a stream as one line of text; one this batonctl does not know, as JSON.
std::string EventText(const nlohmann::json& line, double started) {
  auto event = baton::ServiceEvent::FromJson(line);
  return event.ok() ? baton::ctl::FormatEvent(*event, started) : line.dump() + "\n";
}

int ReportError(const baton::ClientResponse& r) {
  if (!r.error.empty()) {
    std::cerr << "batonctl: " << r.error << "\n";
    return kExitUnreachable;
  }
  if (r.body.is_object() && r.body.contains("error"))
    std::cerr << "batonctl: " << Str(r.body["error"], "message") << "\n";
  else
    std::cerr << "batonctl: batond answered HTTP " << r.status << "\n";
  return r.status == 404 ? kExitNotFound : kExitRefused;
}

// GET or POST with a JSON answer: prints it raw (--json) or through `human`.
int Simple(const Options& o, const std::string& method, const std::string& target, const nlohmann::json& body,
           const std::function<std::string(const nlohmann::json&)>& human) {
  auto r = baton::CallControl(o.socket, method, target, body.is_null() ? "" : body.dump());
  if (!r.error.empty() || r.status != 200) return ReportError(r);
  std::cout << (o.json ? r.raw : human(r.body));
  return 0;
}

// Upgrade, rollback, restart, start: progress as it happens, then the outcome. Exits 0
// only if the new generation was promoted.
int Handover(const Options& o, const std::string& target, const nlohmann::json& body) {
  nlohmann::json result;
  double started = 0;
  auto r = baton::CallControl(o.socket, "POST", target, body.dump(), [&](const nlohmann::json& line) {
    if (o.json) std::cout << line.dump() << std::endl;
    if (line.contains("result")) result = line["result"];
    if (line.contains("event") && !o.json) {
      if (started == 0) started = line["event"].value("time", Now());
      std::cout << EventText(line["event"], started) << std::flush;
    }
  });
  if (!r.error.empty() || r.status != 200) return ReportError(r);
  auto outcome = baton::HandoverResult::FromJson(result);
  if (!outcome.ok()) {
    std::cerr << "batonctl: "
              << (result.is_null() ? "the connection closed before the outcome arrived"
                                   : "the outcome does not read: " + outcome.status().message())
              << "\n";
    return kExitUnreachable;
  }
  if (!o.json) (outcome->promoted ? std::cout : std::cerr) << baton::ctl::FormatOutcome(*outcome);
  return outcome->promoted ? 0 : kExitFailed;
}

int Stream(const Options& o, const std::string& method, const std::string& target,
           const std::function<std::string(const nlohmann::json&)>& human) {
  auto r = baton::CallControl(o.socket, method, target, "", [&](const nlohmann::json& line) {
    std::cout << (o.json ? line.dump() + "\n" : human(line)) << std::flush;
  });
  if (!r.error.empty() || r.status != 200) return ReportError(r);
  return 0;
}

// Replaces batond's program: once batond accepts, it execs, so the outcome is read from
// the status of whichever program then answers (the new one, or the previous one back
// again) once it reports this attempt.
int SelfUpgrade(const Options& o, const std::string& binary, int timeout_s) {
  nlohmann::json body = nlohmann::json::object();
  if (!binary.empty()) body["binary"] = binary;
  auto r = baton::CallControl(o.socket, "POST", protocol::kSelfUpgradePath, body.dump());
  if (!r.error.empty() || r.status != 202) return ReportError(r);
  int attempt = r.body.value("attempt", 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = baton::CallControl(o.socket, "GET", protocol::kStatusPath);
    const nlohmann::json last =
        s.status == 200 ? s.body["daemon"]["self_upgrade"].value("last", nlohmann::json()) : nullptr;
    if (last.is_object() && last.value("attempt", 0) == attempt) {
      bool ok = last.value("ok", false);
      if (o.json)
        std::cout << last.dump() << "\n";
      else if (ok)
        std::cout << "batond " << Str(last, "from_version") << " -> " << Str(last, "to_version") << " ("
                  << Str(last, "binary") << "): pid " << Str(s.body["daemon"], "pid") << " kept, "
                  << Str(last, "workers_kept") << " worker(s) and " << Str(last, "connections_kept")
                  << " proxied connection(s) carried over in "
                  << baton::ctl::Seconds(last.value("duration_ms", 0.0) / 1000) << "\n";
      else
        std::cerr << baton::ctl::State("failed") << ": " << Str(last, "reason") << "\nbatond "
                  << Str(s.body["daemon"], "version") << " (pid " << Str(s.body["daemon"], "pid")
                  << ") keeps running\n";
      return ok ? 0 : kExitFailed;
    }
    ::usleep(20000);  // the program is being replaced: the socket answers again within milliseconds
  }
  std::cerr << "batonctl: no outcome of self-upgrade attempt " << attempt << " within " << timeout_s << "s\n";
  return kExitUnreachable;
}

// Everything batonctl was asked, and how each subcommand is run. Member functions see the
// parsed values by name.
struct Cli {
  Options o;
  bool show_version = false;
  std::string service, version, to, signal, binary;
  std::vector<std::string> command, env;
  int replicas = 0;
  size_t lines = 50;
  bool follow = false, no_wait_drain = false, names_only = false;
  int self_upgrade_timeout = 30;
  CLI::App *status = nullptr, *upgrade = nullptr, *rollback = nullptr, *restart = nullptr, *start = nullptr,
           *stop = nullptr, *scale = nullptr, *recycle = nullptr, *sig = nullptr, *history = nullptr, *logs = nullptr,
           *events = nullptr, *reload = nullptr, *metrics = nullptr, *self_upgrade = nullptr, *top = nullptr,
           *dashboard = nullptr;
  std::map<ServiceAction, CLI::App*> steer;

  std::string path(ServiceAction action) const { return protocol::ActionPath(service, action); }
  std::string wait() const { return no_wait_drain ? "" : "?wait=drained"; }

  // The subcommands and their options.
  void Define(CLI::App& app) {
    status = app.add_subcommand("status", "show the daemon and its services, or one service in detail");
    status->add_option("service", service, "only this service, with its generations and workers");
    status->add_flag("--names", names_only, "print only the service names, one per line");
    upgrade = app.add_subcommand("upgrade", "start a new release and hand over to it once it is ready");
    upgrade->add_option("service", service)->required();
    upgrade->add_option("--version", version, "version of the new release")->required();
    upgrade->add_option("--env", env, "KEY=VALUE for this release (repeatable)");
    upgrade->add_flag("--no-wait-drain", no_wait_drain, "return at promotion, without waiting for the old drain");
    upgrade->add_option("command", command, "replace the command for this release: the arguments after --");
    rollback = app.add_subcommand("rollback", "hand back to the previous promoted release, or to --to");
    rollback->add_option("service", service)->required();
    rollback->add_option("--to", to, "version from the history to return to");
    rollback->add_flag("--no-wait-drain", no_wait_drain, "return at promotion");
    restart = app.add_subcommand("restart", "start the same release again through a full handover");
    restart->add_option("service", service)->required();
    restart->add_flag("--no-wait-drain", no_wait_drain, "return at promotion");
    start = app.add_subcommand("start", "start a stopped service with its last promoted release");
    start->add_option("service", service)->required();
    stop = app.add_subcommand("stop", "stop every worker of a service (stop signal, then SIGKILL)");
    stop->add_option("service", service)->required();
    scale = app.add_subcommand("scale", "change the number of workers");
    scale->add_option("service", service)->required();
    scale->add_option("replicas", replicas)->required()->check(CLI::Range(1, 1024));
    recycle = app.add_subcommand(
        "recycle", "replace every worker, one at a time, each stopped only once its replacement is ready");
    recycle->add_option("service", service)->required();
    sig = app.add_subcommand("signal", "send a signal to every worker's process group");
    sig->add_option("service", service)->required();
    sig->add_option("signal", signal, "e.g. HUP, USR1, TERM")->required();
    history = app.add_subcommand("history", "list a service's handovers and their outcomes");
    history->add_option("service", service)->required();
    logs = app.add_subcommand("logs", "show what the workers wrote");
    logs->add_option("service", service)->required();
    logs->add_option("-n,--lines", lines, "how many of the last lines (default 50)");
    logs->add_flag("-f,--follow", follow, "keep printing new lines");
    events = app.add_subcommand("events", "print everything batond does, as it happens");
    reload = app.add_subcommand("reload", "re-read the configuration file and apply what changed");
    metrics = app.add_subcommand("metrics", "print the Prometheus metrics");
    top = app.add_subcommand("top", "a live view of services, workers (RSS, CPU) and handovers; q quits");
    dashboard = app.add_subcommand("dashboard", "print the web dashboard's address, with its token");
    for (auto [action, help] :
         {std::pair{ServiceAction::kPromote, "skip the remaining steps of a progressive handover: promote now"},
          {ServiceAction::kPause, "hold a progressive handover at its current step"},
          {ServiceAction::kResume, "carry on with a paused progressive handover"}}) {
      steer[action] = app.add_subcommand(protocol::ActionName(action), help);
      steer[action]->add_option("service", service, "the service")->required();
    }
    self_upgrade = app.add_subcommand(
        "self-upgrade", "replace batond's own program, keeping its pid, workers, sockets and connections");
    self_upgrade->add_option("--binary", binary, "the new batond (default: the file batond was started from)");
    self_upgrade->add_option("--timeout", self_upgrade_timeout, "seconds to wait for the outcome (default 30)")
        ->check(CLI::Range(1, 86400));
  }

  // batonctl's version, and batond's when the socket answers.
  int Version() const {
    std::cout << "batonctl " << BATON_VERSION << "\n";
    auto r = baton::CallControl(o.socket, "GET", protocol::kStatusPath);
    if (r.status == 200 && r.body.contains("daemon"))
      std::cout << "batond " << r.body["daemon"].value("version", "?") << " (pid " << r.body["daemon"].value("pid", 0)
                << ", " << o.socket << ")\n";
    else
      std::cout << "batond: no answer on " << o.socket << (r.error.empty() ? "" : ": " + r.error) << "\n";
    return 0;
  }

  int Run() {
    if (status->parsed()) return ShowStatus();
    if (int rc = Handovers(); rc >= 0) return rc;
    return Others();
  }

  int ShowStatus() {
    const double now = Now();
    if (names_only)
      return Simple(o, "GET", protocol::kServicesPath, nullptr, [](const nlohmann::json& b) {
        std::string out;
        for (const auto& s : b["services"]) out += Str(s, "name") + "\n";
        return out;
      });
    if (service.empty())
      return Simple(o, "GET", protocol::kStatusPath, nullptr,
                    [now](const nlohmann::json& b) { return baton::ctl::FormatStatus(b, now); });
    return Simple(o, "GET", protocol::ServicePath(service), nullptr,
                  [now](const nlohmann::json& b) { return baton::ctl::FormatService(b, now); });
  }

  // Upgrade, rollback, restart, start and stop; -1 when none of them was asked.
  int Handovers() {
    if (upgrade->parsed()) {
      baton::UpgradeRequest request{version, std::nullopt, {}};
      if (!command.empty()) request.command = command;
      for (const auto& kv : env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
          std::cerr << "batonctl: --env expects KEY=VALUE, got '" << kv << "'\n";
          return kExitUsage;
        }
        request.env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      return Handover(o, path(ServiceAction::kUpgrade) + wait(), request.ToJson());
    }
    if (rollback->parsed()) {
      nlohmann::json body = nlohmann::json::object();
      if (!to.empty()) body["to"] = to;
      return Handover(o, path(ServiceAction::kRollback) + wait(), body);
    }
    if (restart->parsed()) return Handover(o, path(ServiceAction::kRestart) + wait(), nlohmann::json::object());
    if (start->parsed()) return Handover(o, path(ServiceAction::kStart), nlohmann::json::object());
    if (stop->parsed()) {
      bool stopped = false;
      int rc = Stream(o, "POST", path(ServiceAction::kStop), [&](const nlohmann::json& line) {
        if (line.contains("result")) stopped = true;
        return line.contains("event") ? EventText(line["event"], 0) : "";
      });
      if (rc == 0 && !o.json) std::cout << service << " " << baton::ctl::State(stopped ? "stopped" : "failed") << "\n";
      return rc;
    }
    if (scale->parsed())
      return Simple(o, "POST", path(ServiceAction::kScale), {{"replicas", replicas}}, [&](const nlohmann::json&) {
        return service + " scaled to " + std::to_string(replicas) + " worker(s)\n";
      });
    if (recycle->parsed())
      return Simple(o, "POST", path(ServiceAction::kRecycle), nlohmann::json::object(), [&](const nlohmann::json& b) {
        return "recycling " + Str(b, "workers") + " worker(s) of " + service +
               ", one at a time (batonctl events shows each replacement)\n";
      });
    if (sig->parsed())
      return Simple(o, "POST", path(ServiceAction::kSignal), {{"signal", signal}}, [&](const nlohmann::json& b) {
        return "sent " + Str(b, "signal") + " to " + Str(b, "workers") + " worker(s) of " + service + "\n";
      });
    return -1;
  }

  int Others() {
    if (history->parsed()) return Simple(o, "GET", path(ServiceAction::kHistory), nullptr, baton::ctl::FormatHistory);
    if (logs->parsed()) {
      std::string target = path(ServiceAction::kLogs) + "?lines=" + std::to_string(lines);
      if (follow) return Stream(o, "GET", target + "&follow=1", baton::ctl::FormatLogLine);
      return Simple(o, "GET", target, nullptr, [](const nlohmann::json& b) {
        std::string out;
        for (const auto& l : b["lines"]) out += baton::ctl::FormatLogLine(l);
        if (b.value("dropped", 0) > 0) out += "(" + b["dropped"].dump() + " older lines were dropped)\n";
        return out;
      });
    }
    if (events->parsed())
      return Stream(o, "GET", protocol::kEventsPath, [](const nlohmann::json& e) { return EventText(e, 0); });
    if (reload->parsed()) return Simple(o, "POST", protocol::kReloadPath, nullptr, baton::ctl::FormatReload);
    for (const auto& [action, cmd] : steer)
      if (cmd->parsed())
        return Simple(o, "POST", path(action), nlohmann::json::object(), [&, action = action](const nlohmann::json& r) {
          return service + ": " + protocol::ActionName(action) + " (" + Str(r, "state") + ")\n";
        });
    if (self_upgrade->parsed()) return SelfUpgrade(o, binary, self_upgrade_timeout);
    if (top->parsed()) {
      if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
        std::cerr << "batonctl: top needs a terminal (batonctl status prints once)\n";
        return kExitUsage;
      }
      baton::ctl::SetColor(!std::getenv("NO_COLOR") || !*std::getenv("NO_COLOR"));
      return baton::ctl::RunTop(o.socket);
    }
    if (dashboard->parsed())
      return Simple(o, "GET", protocol::kDashboardPath, nullptr, [](const nlohmann::json& b) {
        return Str(b, "url") + (b.value("read_only", false) ? "  (read-only)" : "") + "\n";
      });
    if (metrics->parsed()) {
      auto r = baton::CallControl(o.socket, "GET", protocol::kMetricsPath);
      if (!r.error.empty() || r.status != 200) return ReportError(r);
      std::cout << r.raw;
      return 0;
    }
    return kExitUsage;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"batonctl: control a running batond"};
  Cli cli;
  app.add_flag("--version", cli.show_version, "print batonctl's version, and batond's when the socket answers");
  app.require_subcommand(0, 1);
  const char* env_socket = std::getenv(protocol::kSocketEnv);
  cli.o.socket = env_socket && *env_socket ? env_socket : protocol::kDefaultSocket;
  app.add_option("-s,--socket", cli.o.socket, "control socket (default: $BATON_SOCKET, else /run/baton/control.sock)");
  app.add_flag("--json", cli.o.json, "print the API's JSON unchanged (one object per line for streams)");
  app.fallthrough();
  cli.Define(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (cli.show_version) return cli.Version();
  if (app.get_subcommands().empty()) {
    std::cerr << "batonctl: a subcommand is required (see batonctl --help)\n";
    return kExitUsage;
  }
  const char* no_color = std::getenv("NO_COLOR");
  baton::ctl::SetColor(::isatty(STDOUT_FILENO) && !(no_color && *no_color) && !cli.o.json);
  return cli.Run();
}
