#include "supervisor/base/system_names.h"

#include <grp.h>

#include "supervisor/base/number.h"

extern char** environ;

namespace baton {

std::vector<std::pair<std::string, std::string>> ProcessEnvironment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; e && *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq != std::string::npos) env.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return env;
}

bool IsNumericId(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

Result<gid_t> LookupGroup(const std::string& name, const std::string& key) {
  if (IsNumericId(name)) return ParseInteger<gid_t>(name, key, 0, kMaxId);
  std::vector<char> buf(16384);
  group gr{}, *found = nullptr;
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
    return Status::InvalidArgument(key + ": no group named '" + name + "'");
  return found->gr_gid;
}

}  // namespace baton
