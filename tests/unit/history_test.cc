#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "supervisor/history/history_store.h"

using namespace baton;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/baton-history-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

HandoverResult Result_(bool promoted, const std::string& version, int64_t gen,
                       HandoverKind kind = HandoverKind::kUpgrade) {
  HandoverResult r;
  r.promoted = promoted;
  r.version = version;
  r.generation = gen;
  r.kind = kind;
  if (!promoted) r.reason = "exited with status 1";
  return r;
}

}  // namespace

TEST_CASE("history survives a reopen and answers rollback questions") {
  TempDir dir;
  {
    auto h = HistoryStore::Open(dir.path, nullptr);
    REQUIRE(h.ok());
    CHECK_FALSE(h->LastPromoted("web"));
    REQUIRE(
        h->Record("web", Release{"v1", std::nullopt, {}, 1}, Result_(true, "v1", 1, HandoverKind::kStart), 10).ok());
    REQUIRE(h->Record("web", Release{"v2", std::vector<std::string>{"./srv", "--new"}, {{"A", "b"}}, 2},
                      Result_(true, "v2", 2), 20)
                .ok());
    REQUIRE(h->Record("web", Release{"v3", std::nullopt, {}, 3}, Result_(false, "v3", 3), 30).ok());
  }
  auto h = HistoryStore::Open(dir.path, nullptr);
  REQUIRE(h.ok());
  auto last = h->LastPromoted("web");
  REQUIRE(last);
  CHECK(last->version == "v2");
  CHECK(*last->command == std::vector<std::string>{"./srv", "--new"});
  CHECK(last->env.at("A") == "b");
  CHECK(h->PreviousPromoted("web", "v2")->version == "v1");
  CHECK(h->Find("web", "v3")->version == "v3");
  CHECK_FALSE(h->Find("web", "v9"));
  CHECK(h->MaxGeneration("web") == 3);
  auto entries = h->Entries("web");
  REQUIRE(entries.size() == 3);
  CHECK(entries[2]["outcome"] == "failed");
  CHECK(entries[2]["reason"] == "exited with status 1");
  CHECK(h->Entries("other").empty());
  CHECK_FALSE(fs::exists(dir.path + "/history.json.tmp"));
}

TEST_CASE("a corrupt history file is moved aside, not lost, and not fatal") {
  TempDir dir;
  std::ofstream(dir.path + "/history.json") << "{ this is not json";
  std::string warning;
  auto h = HistoryStore::Open(dir.path, &warning);
  REQUIRE(h.ok());
  CHECK_THAT(warning, Catch::Contains("history.json.corrupt"));
  CHECK(fs::exists(dir.path + "/history.json.corrupt"));
  CHECK_FALSE(h->LastPromoted("web"));
}

TEST_CASE("a history write that fails reports the error and leaves the old file intact") {
  TempDir dir;
  auto h = HistoryStore::Open(dir.path, nullptr);
  REQUIRE(h->Record("web", Release{"v1", std::nullopt, {}, 1}, Result_(true, "v1", 1), 10).ok());
  // A directory where the temp file should go makes the write fail.
  fs::create_directory(dir.path + "/history.json.tmp");
  Status s = h->Record("web", Release{"v2", std::nullopt, {}, 2}, Result_(true, "v2", 2), 20);
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("history.json.tmp"));
  auto reread = HistoryStore::Open(dir.path, nullptr);
  CHECK(reread->LastPromoted("web")->version == "v1");
}
