// Fuzz target: the checked integer parser that every number from outside goes through.
// Checks each answer against a slow reference: digits only, the whole text, in range.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "supervisor/base/number.h"

namespace {

// The reference: an optional '-', then decimal digits, accumulated in 128 bits and held at
// 10^30 once past it (beyond every 64-bit range, so still out of range).
bool Reference(std::string_view text, __int128* out) {
  bool negative = !text.empty() && text[0] == '-';
  std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty()) return false;
  const __int128 cap = static_cast<__int128>(1'000'000'000'000'000LL) * 1'000'000'000'000'000LL;
  __int128 v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    v = v >= cap ? cap : v * 10 + (c - '0');
  }
  *out = negative ? -v : v;
  return true;
}

template <typename T>
void Check(std::string_view text, T min, T max) {
  auto parsed = baton::ParseInteger<T>(text, "fuzz", min, max);
  __int128 expected = 0;
  bool valid =
      Reference(text, &expected) && (std::is_signed_v<T> || text[0] != '-') && expected >= min && expected <= max;
  if (parsed.ok() != valid) __builtin_trap();
  if (parsed.ok() && static_cast<__int128>(*parsed) != expected) __builtin_trap();
  if (!parsed.ok() && parsed.status().message().rfind("fuzz: ", 0) != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Check<uint32_t>(text, 0, baton::kMaxId);
  Check<int>(text, 1, 4096);
  Check<int64_t>(text, INT64_MIN, INT64_MAX);
  Check<uint64_t>(text, 0, UINT64_MAX);
  Check<uint16_t>(text, 0, 65535);
  return 0;
}
