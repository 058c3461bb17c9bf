// Log files: the config keys, a service's file (text and JSON, rotation, reopening) and
// batond's own log as JSON.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "supervisor/base/log.h"
#include "supervisor/config/config.h"
#include "supervisor/logs/log_files.h"

using namespace baton;
namespace fs = std::filesystem;

namespace {

struct Dir {
  Dir() {
    char tmpl[] = "/tmp/baton-logs-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~Dir() { fs::remove_all(path); }
  std::string path;
};

std::vector<std::string> Lines(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

Result<Config> WithLog(const std::string& daemon, const std::string& log) {
  return ParseConfig("[daemon]\n" + daemon + "\n[service.web]\ncommand = [\"/bin/true\"]\n[service.web.log]\n" + log,
                     "baton.toml");
}

}  // namespace

TEST_CASE("log files in the config: file, max_size, keep, and batond's own log_file and log_format") {
  auto c = WithLog("log_file = \"/var/log/batond.log\"\nlog_max_size = \"10M\"\nlog_keep = 3\nlog_format = \"json\"",
                   "file = \"/var/log/web.log\"\nmax_size = \"512K\"\nkeep = 0\n");
  REQUIRE(c.ok());
  CHECK(c->daemon.log == LogFileConfig{"/var/log/batond.log", 10ull << 20, 3});
  CHECK(c->daemon.log_json);
  CHECK(c->services[0].log == LogFileConfig{"/var/log/web.log", 512ull << 10, 0});
  for (const char* size : {"1048576", "\"1MiB\"", "\"1MB\"", "\"1024K\""}) {
    auto s = WithLog("", std::string("file = \"/x\"\nmax_size = ") + size + "\n");
    REQUIRE(s.ok());
    CHECK(s->services[0].log.max_size == 1ull << 20);
  }
  for (const char* size : {"0", "\"0M\"", "\"12X\"", "\"2048G\"", "\"M\"", "-1"}) {
    auto s = WithLog("", std::string("file = \"/x\"\nmax_size = ") + size + "\n");
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message() ==
          "baton.toml:7:12: service.web.log.max_size: expected a size such as \"100M\", "
          "\"512K\" or \"1G\" (at most 1T)");
  }
  CHECK(WithLog("log_format = \"xml\"", "").status().message() ==
        "baton.toml:2:14: daemon.log_format: expected \"text\" or \"json\"");
  CHECK(WithLog("", "file = \"\"\n").status().message() == "baton.toml:6:8: service.web.log.file: must not be empty");
  CHECK(WithLog("", "files = \"/x\"\n").status().message() == "baton.toml:6:1: service.web.log.files: unknown key");
}

TEST_CASE("a service's log file: lines tagged as in batond's log, or JSON, rotated by size, reopened by name") {
  Dir dir;
  std::string path = dir.path + "/web.log";
  auto text = ServiceLogFile::Open({path, 1 << 20, 2}, false);
  REQUIRE(text.ok());
  (*text)->Write("web", LogLine{1700000000.25, "v2", 7, 4242, true, "listening on \"fd 3\""});
  (*text)->Write("web", LogLine{1700000000.5, "v2", 7, 4242, false, "ready"});
  auto lines = Lines(path);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(".250 web v2 pid=4242 err: listening on \"fd 3\"") != std::string::npos);
  CHECK(lines[1].find(".500 web v2 pid=4242 out: ready") != std::string::npos);

  // logrotate moves the file away; SIGUSR1 makes batond open it anew.
  fs::rename(path, path + ".moved");
  REQUIRE((*text)->Reopen().ok());
  (*text)->Write("web", LogLine{1700000001, "v2", 7, 4242, true, "after the move"});
  CHECK(Lines(path).size() == 1);
  CHECK(Lines(path + ".moved").size() == 2);

  std::string jpath = dir.path + "/json.log";
  auto json = ServiceLogFile::Open({jpath, 300, 2}, true);
  REQUIRE(json.ok());
  for (int i = 0; i < 20; ++i)
    (*json)->Write("web", LogLine{1700000000, "v3", 8, 99, true, "line " + std::to_string(i)});
  auto last = Lines(jpath);
  REQUIRE_FALSE(last.empty());
  auto j = nlohmann::json::parse(last.back());
  CHECK(j["service"] == "web");
  CHECK(j["line"] == "line 19");
  CHECK(j["stream"] == "stderr");
  // spdlog numbers before the extension: json.1.log is the one before.
  CHECK(fs::exists(dir.path + "/json.1.log"));
  CHECK(fs::exists(dir.path + "/json.2.log"));
  CHECK_FALSE(fs::exists(dir.path + "/json.3.log"));  // keep = 2

  // A directory that cannot be made (a file is in the way).
  auto bad = ServiceLogFile::Open({path + "/x.log", 1 << 20, 2}, false);
  CHECK_FALSE(bad.ok());
}

TEST_CASE("batond's own log as JSON: one object per line, the message escaped") {
  Dir dir;
  DaemonConfig d;
  d.log_level = "info";
  d.log.file = dir.path + "/batond.log";
  d.log_json = true;
  REQUIRE(SetUpDaemonLog(d).ok());
  spdlog::info("a \"quoted\" message\twith a tab");
  spdlog::debug("below the level");
  std::ofstream(dir.path + "/a-file") << "x";
  d.log.file = dir.path + "/a-file/batond.log";
  CHECK_FALSE(SetUpDaemonLog(d).ok());  // stderr alone, and it says why
  d.log_level = "off";
  d.log.file.clear();
  REQUIRE(SetUpDaemonLog(d).ok());
  auto lines = Lines(dir.path + "/batond.log");
  REQUIRE(lines.size() == 1);
  auto j = nlohmann::json::parse(lines[0]);
  CHECK(j["level"] == "info");
  CHECK(j["message"] == "a \"quoted\" message\twith a tab");
  CHECK(j["time"].get<std::string>().size() >= 23);
}
