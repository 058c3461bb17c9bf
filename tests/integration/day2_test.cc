// Day-2 operations with real processes: env_file.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/integration/harness.h"

using namespace baton::it;

TEST_CASE("env_file: a release reads the file as it is at its handover; a syntax error fails only that upgrade") {
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
