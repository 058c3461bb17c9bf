#include "supervisor/config/placeholders.h"

#include <cctype>

namespace baton {
namespace {

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; }

// If text[pos] starts a placeholder, returns its length including braces, else 0.
size_t PlaceholderLength(std::string_view text, size_t pos) {
  size_t i = pos + 1;
  size_t start = i;
  while (i < text.size() && (std::islower(static_cast<unsigned char>(text[i])) || text[i] == '_')) ++i;
  if (i == start || i >= text.size()) return 0;
  if (text[i] == ':') {
    size_t name_start = ++i;
    while (i < text.size() && IsWordChar(text[i])) ++i;
    if (i == name_start) return 0;
  }
  if (i >= text.size() || text[i] != '}') return 0;
  return i + 1 - pos;
}

Result<std::string> Resolve(std::string_view inner, const TemplateVars& vars) {
  auto colon = inner.find(':');
  std::string kind(inner.substr(0, colon));
  std::string name = colon == std::string_view::npos ? "" : std::string(inner.substr(colon + 1));
  if (colon == std::string_view::npos) {
    if (kind == "version") return vars.version;
    if (kind == "service") return vars.service;
    if (kind == "probe_port") {
      if (!vars.probe_port) return Status::InvalidArgument("{probe_port} is not available here");
      return std::to_string(*vars.probe_port);
    }
  } else if (kind == "fd") {
    auto it = vars.fds.find(name);
    if (it == vars.fds.end()) return Status::InvalidArgument("{fd:" + name + "} names no listener of this service");
    return std::to_string(it->second);
  } else if (kind == "port") {
    auto it = vars.ports.find(name);
    if (it == vars.ports.end())
      return Status::InvalidArgument("{port:" + name + "} names no TCP or UDP listener of this service");
    return std::to_string(it->second);
  }
  return Status::InvalidArgument("unknown placeholder {" + std::string(inner) + "}");
}

}  // namespace

Result<std::string> ExpandTemplate(std::string_view text, const TemplateVars& vars) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = text[i] == '{' ? PlaceholderLength(text, i) : 0;
    if (len == 0) {
      out += text[i++];
      continue;
    }
    auto value = Resolve(text.substr(i + 1, len - 2), vars);
    if (!value.ok()) return value.status();
    out += *value;
    i += len;
  }
  return out;
}

Result<std::vector<std::string>> ExpandAll(const std::vector<std::string>& texts, const TemplateVars& vars) {
  std::vector<std::string> out;
  for (const auto& t : texts) {
    auto e = ExpandTemplate(t, vars);
    if (!e.ok()) return e.status();
    out.push_back(std::move(*e));
  }
  return out;
}

bool UsesProbePort(std::string_view text) { return text.find("{probe_port}") != std::string_view::npos; }

}  // namespace baton
