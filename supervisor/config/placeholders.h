// Placeholder expansion in argv and env templates: {version}, {service}, {fd:LNAME},
// {port:LNAME}, {probe_port}. Only text of the form {word} or {word:NAME} is a
// placeholder; other braces (JSON, shell) pass through unchanged. Pure.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/base/status.h"

namespace baton {

struct TemplateVars {
  std::string service;
  std::string version;
  std::map<std::string, int> fds;    // listener name -> fd number in the worker
  std::map<std::string, int> ports;  // listener name -> bound port (inet listeners)
  std::optional<int> probe_port;     // a private loopback port for this worker's probes
};

Result<std::string> ExpandTemplate(std::string_view text, const TemplateVars& vars);
Result<std::vector<std::string>> ExpandAll(const std::vector<std::string>& texts, const TemplateVars& vars);

// True if the template mentions {probe_port}.
bool UsesProbePort(std::string_view text);

}  // namespace baton
