#include "supervisor/history/history_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "supervisor/base/json_text.h"
#include "supervisor/base/unique_fd.h"

namespace baton {

namespace {

constexpr size_t kMaxEntriesPerService = 500;

Status WriteFileAtomically(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Status::FromErrno("create " + tmp, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Status::FromErrno("write " + tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("fsync " + tmp, e);
  }
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("rename " + tmp + " to " + path, e);
  }
  std::string dir = path.substr(0, path.rfind('/'));
  UniqueFd dfd(::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
  return Status::Ok();
}

}  // namespace

Result<HistoryStore> HistoryStore::Open(const std::string& state_dir, std::string* warning) {
  HistoryStore store;
  store.path_ = state_dir + "/history.json";
  store.doc_ = {{"format", 1}, {"services", nlohmann::json::object()}};
  std::ifstream in(store.path_);
  if (!in) {
    if (errno == ENOENT) return store;
    return Status::FromErrno("read " + store.path_, errno);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("services") || !doc["services"].is_object()) {
    std::string aside = store.path_ + ".corrupt";
    ::rename(store.path_.c_str(), aside.c_str());
    if (warning) *warning = "history file " + store.path_ + " could not be parsed; moved to " + aside;
    return store;
  }
  store.doc_ = std::move(doc);
  return store;
}

Status HistoryStore::Record(const std::string& service, const Release& release, const HandoverResult& result,
                            double now) {
  nlohmann::json entry = ReleaseToJson(release);
  entry["outcome"] = result.promoted ? "promoted" : "failed";
  entry["kind"] = HandoverKindName(result.kind);
  entry["generation"] = result.generation;
  entry["at"] = now;
  entry["duration_s"] = result.duration_s;
  if (!result.from_version.empty()) entry["from_version"] = result.from_version;
  if (!result.reason.empty()) entry["reason"] = result.reason;
  if (result.steps.is_array() && !result.steps.empty()) entry["steps"] = result.steps;
  auto& list = doc_["services"][service];
  if (!list.is_array()) list = nlohmann::json::array();
  list.push_back(std::move(entry));
  if (list.size() > kMaxEntriesPerService) list.erase(list.begin());
  return Save();
}

Status HistoryStore::NoteReplacement(const std::string& service, int64_t generation, const std::string& cause) {
  auto& services = doc_["services"];
  auto it = services.find(service);
  if (it == services.end() || !it->is_array()) return Status::Ok();
  for (auto e = it->rbegin(); e != it->rend(); ++e)
    if (e->is_object() && e->value("generation", int64_t{0}) == generation && e->value("outcome", "") == "promoted") {
      auto& count = (*e)["replacements"][cause];
      count = (count.is_number_unsigned() ? count.get<uint64_t>() : 0) + 1;
      return Save();
    }
  return Status::Ok();
}

Status HistoryStore::Save() const { return WriteFileAtomically(path_, JsonText(doc_, 1) + "\n"); }

nlohmann::json HistoryStore::Entries(const std::string& service) const {
  const auto& services = doc_["services"];
  auto it = services.find(service);
  if (it == services.end() || !it->is_array()) return nlohmann::json::array();
  return *it;
}

std::optional<Release> HistoryStore::LastPromoted(const std::string& service) const {
  auto list = Entries(service);
  for (auto it = list.rbegin(); it != list.rend(); ++it)
    if (it->is_object() && it->value("outcome", "") == "promoted") return ReleaseFromJson(*it);
  return std::nullopt;
}

std::optional<Release> HistoryStore::PreviousPromoted(const std::string& service, const std::string& current) const {
  auto list = Entries(service);
  for (auto it = list.rbegin(); it != list.rend(); ++it)
    if (it->is_object() && it->value("outcome", "") == "promoted" && it->value("version", "") != current)
      return ReleaseFromJson(*it);
  return std::nullopt;
}

std::optional<Release> HistoryStore::Find(const std::string& service, const std::string& version) const {
  auto list = Entries(service);
  std::optional<Release> any;
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if (!it->is_object() || it->value("version", "") != version) continue;
    if (it->value("outcome", "") == "promoted") return ReleaseFromJson(*it);
    if (!any) any = ReleaseFromJson(*it);
  }
  return any;
}

int64_t HistoryStore::MaxGeneration(const std::string& service) const {
  int64_t max = 0;
  for (const auto& e : Entries(service))
    if (e.is_object()) max = std::max<int64_t>(max, e.value("generation", int64_t{0}));
  return max;
}

}  // namespace baton
