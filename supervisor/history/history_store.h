// The durable release history: every handover's outcome per service, in one JSON file in
// state_dir. Each change rewrites the file atomically (write temp, fsync, rename, fsync
// the directory), so a crash leaves either the old or the new file, never a torn one.
// Loaded once at start; the in-memory copy is the truth while batond runs.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "supervisor/base/status.h"
#include "supervisor/handover/release.h"
#include "supervisor/handover/service.h"

namespace baton {

class HistoryStore {
 public:
  // Reads state_dir/history.json if present. A file that cannot be parsed is moved aside
  // (history.json.corrupt) and reported in `warning`, so nothing is silently lost.
  static Result<HistoryStore> Open(const std::string& state_dir, std::string* warning);

  Status Record(const std::string& service, const Release& release, const HandoverResult& result, double now);
  // A worker of the promoted `generation` was replaced (by cause: health, memory, age,
  // operator): counted in that release's entry, as "replacements": {"health": 2}.
  Status NoteReplacement(const std::string& service, int64_t generation, const std::string& cause);

  // The release most recently promoted, if any.
  std::optional<Release> LastPromoted(const std::string& service) const;
  // The most recent promoted release whose version differs from `current`.
  std::optional<Release> PreviousPromoted(const std::string& service, const std::string& current) const;
  // The most recent release with this version (promoted first, else any).
  std::optional<Release> Find(const std::string& service, const std::string& version) const;
  int64_t MaxGeneration(const std::string& service) const;
  nlohmann::json Entries(const std::string& service) const;
  const std::string& path() const { return path_; }

 private:
  Status Save() const;
  std::string path_;
  nlohmann::json doc_;  // {"format": 1, "services": {NAME: [entry, ...]}}
};

}  // namespace baton
