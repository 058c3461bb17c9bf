// Fuzz target: argv/env placeholder expansion ({version}, {fd:NAME}, {port:NAME}, ...).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "supervisor/config/placeholders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const baton::TemplateVars vars{"web", "v1.2", {{"http", 3}, {"admin", 4}}, {{"http", 8080}}, 40123};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto expanded = baton::ExpandTemplate(text, vars);
  (void)baton::UsesProbePort(text);
  // Text without a brace is never changed.
  if (text.find('{') == std::string_view::npos && (!expanded.ok() || *expanded != text)) __builtin_trap();
  return 0;
}
