// env_file: systemd's EnvironmentFile= syntax, and where its values go in a worker's
// environment.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "supervisor/config/config.h"
#include "supervisor/config/env_file.h"

using namespace baton;

namespace {

EnvList Parse(const std::string& text) {
  auto parsed = ParseEnvironmentFile(text, "/etc/web.env");
  INFO(parsed.status().message());
  REQUIRE(parsed.ok());
  return *parsed;
}

std::string Error(const std::string& text) {
  auto parsed = ParseEnvironmentFile(text, "/etc/web.env");
  REQUIRE_FALSE(parsed.ok());
  return parsed.status().message();
}

}  // namespace

TEST_CASE("env_file: assignments, comments, blanks and whitespace as systemd reads them") {
  EnvList expected = {{"A", "1"}, {"B", "two words"}, {"C", ""}, {"D_2", "x # not a comment"}, {"E", "last"}};
  CHECK(Parse("A=1\n"
              "# a comment\n"
              "; another\n"
              "\n"
              "  B =  two words  \n"
              "C=\n"
              "\t D_2=x # not a comment\r\n"
              "E=last") == expected);
  CHECK(Parse("").empty());
  CHECK(Parse("\n\n  \n# only comments").empty());
}

TEST_CASE("env_file: quotes, escapes and continued lines") {
  CHECK(Parse("A='single $HOME \\n \"kept\"'\n") == EnvList{{"A", "single $HOME \\n \"kept\""}});
  CHECK(Parse("A=\"a \\\"b\\\" \\\\ \\$x \\` \\n\"\n") == EnvList{{"A", "a \"b\" \\ $x ` \\n"}});
  CHECK(Parse("A=one\\\ntwo\nB=after\n") == EnvList{{"A", "onetwo"}, {"B", "after"}});
  CHECK(Parse("A=\"multi\nline\"\nB=2\n") == EnvList{{"A", "multi\nline"}, {"B", "2"}});
  CHECK(Parse("A=pre'fix 'and\" more\"  \n") == EnvList{{"A", "prefix and more"}});
  CHECK(Parse("A=\\ x\\ \n") == EnvList{{"A", " x "}});  // escaped blanks stay
  CHECK(Parse("A=1\nA=2\n") == EnvList{{"A", "1"}, {"A", "2"}});
}

TEST_CASE("env_file: an error names the file and the line where the assignment starts") {
  CHECK(Error("A=1\nB\n") == "/etc/web.env:2: expected KEY=VALUE");
  CHECK(Error("A=1\n\n1A=x\n") == "/etc/web.env:3: '1A' is not a variable name (letters, digits and _)");
  CHECK(Error("export A=1\n") == "/etc/web.env:1: 'export A' is not a variable name (letters, digits and _)");
  CHECK(Error("=x\n") == "/etc/web.env:1: '' is not a variable name (letters, digits and _)");
  CHECK(Error("A=1\nB='open\nC=3\n") == "/etc/web.env:2: B: a single quote is not closed");
  CHECK(Error("A=\"x\\\"\n") == "/etc/web.env:1: A: a double quote is not closed");
  // Line numbers count the lines a quoted value spans.
  CHECK(Error("A=\"1\n2\"\nB\n") == "/etc/web.env:3: expected KEY=VALUE");
}

TEST_CASE("env_file: files read in turn and a '-' first allows a missing one") {
  char dir[] = "/tmp/baton-env-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  std::string a = std::string(dir) + "/a.env", b = std::string(dir) + "/b.env";
  std::ofstream(a) << "X=1\nY=from a\n";
  std::ofstream(b) << "Y=from b\n";
  auto read = ReadEnvironmentFiles({a, "-" + std::string(dir) + "/missing.env", b});
  REQUIRE(read.ok());
  CHECK(*read == EnvList{{"X", "1"}, {"Y", "from a"}, {"Y", "from b"}});
  auto missing = ReadEnvironmentFiles({std::string(dir) + "/missing.env"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == "env_file " + std::string(dir) + "/missing.env: No such file or directory");
  std::ofstream(b) << "Z\n";
  auto bad = ReadEnvironmentFiles({a, b});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() == "env_file " + b + ":1: expected KEY=VALUE");
  std::remove(a.c_str());
  std::remove(b.c_str());
  ::rmdir(dir);
}

TEST_CASE("env_file in the config: a path or a list of paths, '-' first for an optional one") {
  const std::string head = "[service.web]\ncommand = [\"/bin/true\"]\n";
  auto one = ParseConfig(head + "env_file = \"/etc/web.env\"\n", "baton.toml");
  REQUIRE(one.ok());
  CHECK(one->services[0].env_files == std::vector<std::string>{"/etc/web.env"});
  auto two = ParseConfig(head + "env_file = [\"/etc/a.env\", \"-/etc/b.env\"]\n", "baton.toml");
  REQUIRE(two.ok());
  CHECK(two->services[0].env_files == std::vector<std::string>{"/etc/a.env", "-/etc/b.env"});
  auto empty = ParseConfig(head + "env_file = [\"/etc/a.env\", \"-\"]\n", "baton.toml");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().message() == "baton.toml:3:12: service.web.env_file: a path must not be empty");
  auto number = ParseConfig(head + "env_file = 3\n", "baton.toml");
  REQUIRE_FALSE(number.ok());
  CHECK(number.status().message() == "baton.toml:3:12: service.web.env_file: expected a path or an array of paths");
}
