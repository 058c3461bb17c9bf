// Day-2 operations with real processes: env_file, start order, log files, hooks.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

using namespace baton::it;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("env_file: a release reads the file as it is at its handover and a syntax error fails only that upgrade") {
  TempDir files;
  std::string path = files.path + "/web.env";
  std::ofstream(path) << "# written by the deploy\nGREETING='hello from v1'\n";
  Daemon d(WebService(2, "env_file = [\"" + path + "\", \"-" + files.path + "/optional.env\"]\n"));
  d.Start();
  INFO(d.Log());
  int port = d.Port("web");
  CHECK(HttpGet(port, "/env/GREETING") == "hello from v1\n");
  Load load(port, 4);
  std::ofstream(path) << "GREETING=\"hello from \\\"v2\\\"\"\n";
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  CHECK(HttpGet(port, "/env/GREETING") == "hello from \"v2\"\n");

  std::ofstream(path) << "GREETING=fine\nBROKEN='no end\n";
  auto bad = d.Ctl({"upgrade", "web", "--version", "v3"});
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Catch::Contains(path + ":2: BROKEN: a single quote is not closed"));
  CHECK(d.Service("web")["version"] == "v2");
  CHECK(HttpGet(port, "/env/GREETING") == "hello from \"v2\"\n");
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.versions().count("v3") == 0);
}

namespace {

// Two services of test workers: db, whose workers take `ready_ms` to be ready, and web,
// which starts after db.
std::string Ordered(int ready_ms) {
  std::string db = WebService(1, "", ", \"--ready-delay\", \"" + std::to_string(ready_ms) + "\"");
  for (std::string from = "service.web"; db.find(from) != std::string::npos;)
    db.replace(db.find(from), from.size(), "service.db");
  return db + WebService(2, "after = [\"db\"]\n");
}

}  // namespace

TEST_CASE("start order: a service starts once what it comes after is live, and stops before it") {
  Daemon d(Ordered(500));
  d.Start();
  INFO(d.Log());
  auto db = d.Service("db"), web = d.Service("web");
  REQUIRE(db["state"] == "running");
  REQUIRE(web["state"] == "running");
  double db_started = db["generations"][0]["started_at"].get<double>();
  double web_started = web["generations"][0]["started_at"].get<double>();
  CHECK(web_started - db_started >= 0.5);  // db's workers took 500 ms to be ready
  CHECK(d.Stop() == 0);
  std::string log = d.Log();
  INFO(log);
  // Every web worker has exited before db hears of the stop.
  auto stop = log.find("SIGTERM: draining every service");
  REQUIRE(stop != std::string::npos);
  auto web_gone = log.find("web gen 1 (v1): generation_exited", stop);
  auto db_told = log.find("info db", stop);
  REQUIRE(web_gone != std::string::npos);
  REQUIRE(db_told != std::string::npos);
  CHECK(web_gone < db_told);
}

TEST_CASE("start order: a service waits while what it comes after cannot start, and starts once it is live") {
  std::string config = Ordered(0);
  config.replace(config.find("\"--notify\""), std::string("\"--notify\"").size(), "\"--exit-at-start\", \"3\"");
  Daemon d(config);
  d.Start();
  INFO(d.Log());
  CHECK(d.Service("db")["version"].is_null());
  auto web = d.Service("web");
  CHECK(web["state"] == "waiting");
  CHECK(web["waiting_for"] == nlohmann::json::array({"db"}));
  CHECK(web["generations"].empty());
  auto fixed = d.Ctl({"upgrade", "db", "--version", "v2", "--", TEST_WORKER_PATH, "--version", "v2", "--notify"});
  INFO(fixed.output);
  REQUIRE(fixed.exit_code == 0);
  REQUIRE(WaitFor([&] { return d.Service("web")["state"] == "running"; }));
  CHECK_FALSE(d.Service("web").contains("waiting_for"));
  CHECK(HttpGet(d.Port("web")).rfind("version=v1", 0) == 0);
}

TEST_CASE("start order: a service a reload adds starts after what it names") {
  Daemon d(WebService(1));
  d.Start();
  INFO(d.Log());
  // api starts after web, which is live: at once. jobs starts after api.
  std::string api = WebService(1, "after = [\"web\"]\n"), jobs = WebService(1, "after = [\"api\"]\n");
  for (auto* text : {&api, &jobs})
    for (std::string from = "service.web"; text->find(from) != std::string::npos;)
      text->replace(text->find(from), from.size(), text == &api ? "service.api" : "service.jobs");
  d.WriteConfig(WebService(1) + api + jobs);
  auto r = d.Ctl({"reload"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(WaitFor([&] { return d.Service("jobs")["state"] == "running"; }));
  double api_started = d.Service("api")["generations"][0]["started_at"].get<double>();
  double jobs_started = d.Service("jobs")["generations"][0]["started_at"].get<double>();
  CHECK(jobs_started >= api_started);
  // A reload that would make a cycle changes nothing.
  std::string cycle = WebService(1, "after = [\"jobs\"]\n") + api + jobs;
  d.WriteConfig(cycle);
  auto refused = d.Ctl({"reload"});
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output,
             Catch::Contains("service.api.after: the start order makes a cycle: api -> web -> jobs -> api"));
  CHECK(d.Service("web")["state"] == "running");
}

TEST_CASE("log files: worker output in the service's file and batond's own as JSON - SIGUSR1 opens them anew") {
  Daemon d(WebService(2, "[service.web.log]\nfile = \"@DIR@/logs/web.log\"\nkeep = 2\n"),
           "log_file = \"@DIR@/logs/batond.log\"\nlog_format = \"json\"\n");
  d.Start();
  INFO(d.Log());
  std::string logs = d.dir() + "/logs";
  // Both files hold one JSON object per line.
  auto has = [&](const std::string& file, const char* key, const std::string& text) {
    std::istringstream in(Slurp(logs + "/" + file));
    for (std::string line; std::getline(in, line);)
      if (nlohmann::json::parse(line)[key].get<std::string>().find(text) != std::string::npos) return true;
    return false;
  };
  REQUIRE(WaitFor([&] { return has("web.log", "line", "test_worker v1 serving"); }));
  CHECK(has("batond.log", "message", "batond running"));

  Load load(d.Port("web"), 4);
  // logrotate moves the files away, then signals batond.
  std::filesystem::rename(logs + "/web.log", logs + "/web.log.moved");
  std::filesystem::rename(logs + "/batond.log", logs + "/batond.log.moved");
  ::kill(d.pid(), SIGUSR1);
  REQUIRE(WaitFor([&] { return has("batond.log", "message", "log files opened anew"); }));
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  REQUIRE(WaitFor([&] { return has("web.log", "line", "test_worker v2 serving"); }));
  CHECK_FALSE(has("web.log.moved", "line", "test_worker v2"));
  CHECK(has("web.log.moved", "line", "test_worker v1"));
  CHECK(d.Ctl({"logs", "web"}).output.find("v2") != std::string::npos);  // batonctl logs as before
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("hooks: real commands with the handover's facts - a before_start that fails stops the upgrade only") {
  TempDir out;
  std::string record = "[\"/bin/sh\", \"-c\", \"echo $BATON_HOOK $BATON_VERSION from=$BATON_FROM_VERSION >> " +
                       out.path + "/hooks.log\"]";
  Daemon d(WebService(2, "[service.web.hooks]\non_promoted = " + record + "\nbefore_drain = " + record +
                             "\nbefore_start = [\"/bin/sh\", \"-c\", \"test ! -e " + out.path + "/freeze\"]\n"));
  d.Start();
  INFO(d.Log());
  Load load(d.Port("web"), 4);
  REQUIRE(d.Ctl({"upgrade", "web", "--version", "v2"}).exit_code == 0);
  REQUIRE(load.WaitForVersion("v2"));
  REQUIRE(WaitFor([&] { return Slurp(out.path + "/hooks.log").find("on_promoted v2 from=v1") != std::string::npos; }));
  CHECK(Slurp(out.path + "/hooks.log").find("before_drain v1 from=") != std::string::npos);
  std::ofstream(out.path + "/freeze") << "deploys frozen\n";
  auto frozen = d.Ctl({"upgrade", "web", "--version", "v3"});
  CHECK(frozen.exit_code != 0);
  CHECK_THAT(frozen.output, Catch::Contains("the before_start hook failed"));
  CHECK(d.Service("web")["version"] == "v2");
  load.Stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.versions().count("v3") == 0);
}
