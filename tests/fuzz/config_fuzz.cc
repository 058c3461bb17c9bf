// Fuzz target: the TOML config loader and validator (ParseConfig), as batond --check runs it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "supervisor/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = baton::ParseConfig(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
  if (!config.ok() && config.status().message().rfind("fuzz.toml", 0) != 0)
    __builtin_trap();  // every error names the file
  return 0;
}
