// Field readers for baton.toml: type, range and the key's place in every error.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "supervisor/base/duration.h"
#include "supervisor/base/number.h"
#include "supervisor/config/config_reader.h"

#include <map>
#include "supervisor/config/placeholders.h"

namespace baton {

Status ConfigReader::Error(const toml::source_region& where, const std::string& key, const std::string& msg) const {
  std::string loc = path_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
  return Status::InvalidArgument(loc + ": " + key + ": " + msg);
}

Status ConfigReader::Error(const toml::node& node, const std::string& key, const std::string& msg) const {
  return Error(node.source(), key, msg);
}

Status ConfigReader::CheckKeys(const toml::table& table, const std::string& prefix,
                               const std::set<std::string>& allowed) const {
  for (auto&& [k, v] : table) {
    if (!allowed.count(std::string(k.str()))) return Error(k.source(), Join(prefix, k.str()), "unknown key");
  }
  return Status::Ok();
}

std::string ConfigReader::Join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

Status ConfigReader::String(const toml::table& t, const std::string& prefix, std::string_view key,
                            std::string& out) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  auto v = n->value<std::string>();
  if (!v || !n->is_string()) return Error(*n, Join(prefix, key), "expected a string");
  out = *v;
  return Status::Ok();
}

Status ConfigReader::Int(const toml::table& t, const std::string& prefix, std::string_view key, int& out, long min,
                         long max) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  if (!n->is_integer()) return Error(*n, Join(prefix, key), "expected an integer");
  long v = n->as_integer()->get();
  if (v < min || v > max)
    return Error(*n, Join(prefix, key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
  out = static_cast<int>(v);
  return Status::Ok();
}

Status ConfigReader::Bool(const toml::table& t, const std::string& prefix, std::string_view key, bool& out) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  if (!n->is_boolean()) return Error(*n, Join(prefix, key), "expected true or false");
  out = n->as_boolean()->get();
  return Status::Ok();
}

Status ConfigReader::Float(const toml::table& t, const std::string& prefix, std::string_view key, double& out,
                           double min) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  if (!n->is_number()) return Error(*n, Join(prefix, key), "expected a number");
  double v = n->is_integer() ? static_cast<double>(n->as_integer()->get()) : n->as_floating_point()->get();
  if (v < min) return Error(*n, Join(prefix, key), "must be at least " + std::to_string(min));
  out = v;
  return Status::Ok();
}

Status ConfigReader::Dur(const toml::table& t, const std::string& prefix, std::string_view key, Duration& out) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  std::optional<Duration> d;
  if (n->is_string())
    d = ParseDuration(n->as_string()->get());
  else if (n->is_integer() && n->as_integer()->get() >= 0)
    d = Duration(n->as_integer()->get() * 1000);
  if (!d) return Error(*n, Join(prefix, key), "expected a duration such as \"500ms\", \"5s\" or \"2m\"");
  out = *d;
  return Status::Ok();
}

Status ConfigReader::Size(const toml::table& t, const std::string& prefix, std::string_view key, uint64_t& out) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  std::optional<uint64_t> bytes;
  if (n->is_integer() && n->as_integer()->get() > 0) {
    bytes = static_cast<uint64_t>(n->as_integer()->get());
  } else if (n->is_string()) {
    std::string text = n->as_string()->get();
    size_t digits = text.find_first_not_of("0123456789");
    std::string unit = digits == std::string::npos ? "" : text.substr(digits);
    static const std::map<std::string, int> shifts = {{"", 0},     {"B", 0},   {"K", 10},  {"KB", 10},
                                                      {"KiB", 10}, {"M", 20},  {"MB", 20}, {"MiB", 20},
                                                      {"G", 30},   {"GB", 30}, {"GiB", 30}};
    auto shift = shifts.find(unit);
    if (digits != 0 && digits <= 13 && shift != shifts.end()) {
      uint64_t count = std::stoull(text.substr(0, digits));  // at most 13 digits: no overflow
      if (count > 0 && count <= (1ull << 40)) bytes = count << shift->second;
    }
  }
  if (!bytes || *bytes > (1ull << 40))
    return Error(*n, Join(prefix, key), "expected a size such as \"100M\", \"512K\" or \"1G\" (at most 1T)");
  out = *bytes;
  return Status::Ok();
}

Status ConfigReader::LogFile(const toml::table& t, const std::string& prefix, const char* file_key,
                             const char* size_key, const char* keep_key, LogFileConfig& out) const {
  if (auto s = String(t, prefix, file_key, out.file); !s.ok()) return s;
  if (t.get(file_key) && out.file.empty()) return Error(*t.get(file_key), Join(prefix, file_key), "must not be empty");
  if (auto s = Size(t, prefix, size_key, out.max_size); !s.ok()) return s;
  return Int(t, prefix, keep_key, out.keep, 0, 1000);
}

Status ConfigReader::StringArray(const toml::node& n, const std::string& key, std::vector<std::string>& out,
                                 bool non_empty) const {
  const toml::array* arr = n.as_array();
  if (!arr) return Error(n, key, "expected an array of strings");
  out.clear();
  for (auto&& item : *arr) {
    if (!item.is_string()) return Error(item, key, "expected an array of strings");
    out.push_back(item.as_string()->get());
  }
  if (non_empty && (out.empty() || out[0].empty())) return Error(n, key, "must name a program to run");
  return Status::Ok();
}

// A user or group given by number must be a valid id: read unchecked, "4294967296" wrapped
// to 0 and a worker ran as root.
Status ConfigReader::AccountIds(const toml::table& t, const std::string& prefix, std::string_view key) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  auto check = [&](const toml::node& item) {
    const std::string& name = item.as_string()->get();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) return Status::Ok();
    auto id = ParseInteger<unsigned>(name, "id", 0, kMaxId);
    return id.ok() ? Status::Ok() : Error(item, Join(prefix, key), id.status().message());
  };
  if (const toml::array* arr = n->as_array()) {
    for (auto&& item : *arr)
      if (auto s = check(item); !s.ok()) return s;
    return Status::Ok();
  }
  return check(*n);
}

Status ConfigReader::IdList(const toml::table& t, const std::string& key, std::vector<unsigned>& out) const {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  const toml::array* arr = n->as_array();
  if (!arr) return Error(*n, "daemon." + key, "expected an array of numeric ids");
  for (auto&& item : *arr) {
    if (!item.is_integer() || item.as_integer()->get() < 0 || item.as_integer()->get() > 4294967294)
      return Error(item, "daemon." + key, "expected an array of numeric ids");
    out.push_back(static_cast<unsigned>(item.as_integer()->get()));
  }
  return Status::Ok();
}

}  // namespace baton
