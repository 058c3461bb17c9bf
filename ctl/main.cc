// batonctl: drives batond over its control socket. Exit codes: 0 success, 1 the operation
// failed (e.g. the new generation was not promoted), 2 usage, 3 batond unreachable or
// answered with an error.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "ctl/client.h"

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

std::string Str(const nlohmann::json& j, const char* key, const std::string& def = "-") {
  if (!j.contains(key) || j[key].is_null()) return def;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

std::string Age(double since) {
  if (since <= 0) return "-";
  long s = static_cast<long>(std::time(nullptr) - since);
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  return std::to_string(s / 3600) + "h";
}

int ReportError(const baton::ClientResponse& r) {
  if (!r.error.empty()) {
    std::cerr << "batonctl: " << r.error << "\n";
    return kExitUnreachable;
  }
  if (r.body.is_object() && r.body.contains("error"))
    std::cerr << "batonctl: " << Str(r.body["error"], "message") << " (" << Str(r.body["error"], "code") << ")\n";
  else
    std::cerr << "batonctl: batond answered HTTP " << r.status << "\n";
  return kExitUnreachable;
}

void PrintStatus(const nlohmann::json& status) {
  const auto& d = status["daemon"];
  if (!d.empty())
    std::cout << "batond pid " << Str(d, "pid") << ", version " << Str(d, "version") << ", up "
            << Age(d.value("started_at", 0.0)) << "\n";
  for (const auto& s : status["services"]) {
    std::cout << (d.empty() ? "" : "\n") << Str(s, "name") << "  " << Str(s, "state") << "  version " << Str(s, "version") << "\n";
    for (const auto& l : s["listeners"]) std::cout << "  listen " << Str(l, "name") << " " << Str(l, "address") << "\n";
    for (const auto& g : s["generations"]) {
      std::cout << "  gen " << Str(g, "id") << "  " << Str(g, "version") << "  " << Str(g, "state") << "  age "
                << Age(g.value("started_at", 0.0)) << "\n";
      for (const auto& w : g["workers"]) {
        std::cout << "    worker " << Str(w, "id") << "  pid " << Str(w, "pid") << "  " << Str(w, "state")
                  << "  restarts " << Str(w, "restarts");
        if (w.contains("last_exit")) std::cout << "  last exit: " << Str(w, "last_exit");
        if (w.contains("status")) std::cout << "  status: " << Str(w, "status");
        std::cout << "\n";
      }
    }
    if (s.contains("handover"))
      std::cout << "  in progress: " << Str(s["handover"], "kind") << " to " << Str(s["handover"], "version") << "\n";
    if (s.contains("last_handover")) {
      const auto& h = s["last_handover"];
      std::cout << "  last handover: " << Str(h, "kind") << " to " << Str(h, "version") << ": "
                << (h.value("promoted", false) ? "promoted" : "failed: " + Str(h, "reason")) << "\n";
    }
    if (s.contains("fatal_reason")) std::cout << "  fatal: " << Str(s, "fatal_reason") << "\n";
  }
}

// Streams progress, prints the outcome; exit 0 only if the new generation was promoted.
int RunHandover(const std::string& socket, const std::string& target, const nlohmann::json& body, bool json) {
  nlohmann::json result;
  auto r = baton::CallControl(socket, "POST", target, body.dump(), [&](const nlohmann::json& line) {
    if (line.contains("event")) {
      const auto& e = line["event"];
      if (json) std::cout << line.dump() << "\n";
      else std::cout << "  " << Str(e, "type") << ": " << Str(e, "message", "") << "\n";
    } else if (line.contains("result")) {
      result = line["result"];
    }
  });
  if (!r.error.empty() || r.status != 200) return ReportError(r);
  if (result.is_null()) {
    std::cerr << "batonctl: the connection closed before the outcome arrived\n";
    return kExitUnreachable;
  }
  if (json) std::cout << nlohmann::json{{"result", result}}.dump() << "\n";
  if (result.value("promoted", false)) {
    if (!json)
      std::cout << "promoted " << Str(result, "version") << " (generation " << Str(result, "generation") << ") in "
                << result.value("duration_s", 0.0) << "s\n";
    return 0;
  }
  if (!json) std::cerr << "FAILED: " << Str(result, "version") << " was not promoted: " << Str(result, "reason") << "\n"
                       << Str(result, "from_version", "nothing") << " is still serving\n";
  return kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"batonctl: control a running batond"};
  app.require_subcommand(1);
  const char* env_socket = std::getenv("BATON_SOCKET");
  std::string socket = env_socket && *env_socket ? env_socket : "/run/baton/control.sock";
  bool json = false;
  app.add_option("-s,--socket", socket, "control socket (default: $BATON_SOCKET, else /run/baton/control.sock)");
  app.add_flag("--json", json, "print JSON instead of text");

  auto* status = app.add_subcommand("status", "show the daemon, services, generations and workers");
  std::string status_service;
  status->add_option("service", status_service, "only this service");

  auto* upgrade = app.add_subcommand("upgrade", "start a new generation and hand over to it when ready");
  std::string up_service, up_version;
  std::vector<std::string> up_command, up_env;
  upgrade->add_option("service", up_service)->required();
  upgrade->add_option("--version", up_version, "version of the new release")->required();
  upgrade->add_option("command", up_command, "override the command: the arguments after --, e.g. -- ./server --port 1");
  upgrade->add_option("--env", up_env, "override an environment variable, KEY=VALUE (repeatable)");

  auto* rollback = app.add_subcommand("rollback", "hand back to the previous (or a named) promoted release");
  std::string rb_service, rb_to;
  rollback->add_option("service", rb_service)->required();
  rollback->add_option("--to", rb_to, "version to return to (default: the previous promoted one)");

  auto* history = app.add_subcommand("history", "list a service's releases and their outcomes");
  std::string hist_service;
  history->add_option("service", hist_service)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  if (status->parsed()) {
    std::string target = status_service.empty() ? "/v1/status" : "/v1/services/" + status_service;
    auto r = baton::CallControl(socket, "GET", target);
    if (!r.error.empty() || r.status != 200) return ReportError(r);
    if (json) std::cout << r.body.dump(2) << "\n";
    else if (status_service.empty()) PrintStatus(r.body);
    else PrintStatus({{"daemon", nlohmann::json::object()}, {"services", {r.body}}});
    return 0;
  }
  if (upgrade->parsed()) {
    nlohmann::json body = {{"version", up_version}};
    if (!up_command.empty()) body["command"] = up_command;
    for (const auto& kv : up_env) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "batonctl: --env expects KEY=VALUE, got '" << kv << "'\n";
        return kExitUsage;
      }
      body["env"][kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (!json) std::cout << "upgrading " << up_service << " to " << up_version << "\n";
    return RunHandover(socket, "/v1/services/" + up_service + "/upgrade", body, json);
  }
  if (rollback->parsed()) {
    nlohmann::json body = nlohmann::json::object();
    if (!rb_to.empty()) body["to"] = rb_to;
    if (!json) std::cout << "rolling back " << rb_service << (rb_to.empty() ? "" : " to " + rb_to) << "\n";
    return RunHandover(socket, "/v1/services/" + rb_service + "/rollback", body, json);
  }
  if (history->parsed()) {
    auto r = baton::CallControl(socket, "GET", "/v1/services/" + hist_service + "/history");
    if (!r.error.empty() || r.status != 200) return ReportError(r);
    if (json) {
      std::cout << r.body.dump(2) << "\n";
      return 0;
    }
    for (const auto& e : r.body["releases"]) {
      std::time_t at = static_cast<std::time_t>(e.value("at", 0.0));
      char when[32];
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&at));
      std::cout << when << "  gen " << Str(e, "generation") << "  " << Str(e, "version") << "  " << Str(e, "kind")
                << "  " << Str(e, "outcome");
      if (e.contains("reason")) std::cout << ": " << Str(e, "reason");
      std::cout << "\n";
    }
    return 0;
  }
  return kExitUsage;
}
