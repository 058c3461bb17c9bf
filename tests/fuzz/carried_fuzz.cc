// Fuzz target: the state a self-upgrade carries (DecodeCarriedState). Whatever the bytes,
// the decoder answers without crashing; a state it accepts encodes to text that decodes
// again and encodes to the same tree. Numbers with a fraction may move by an ulp or two:
// Boost.JSON 1.81 does not round every decimal to the nearest double.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "supervisor/upgrade/carried_state.h"

namespace {

bool Same(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    if (!a.is_number() || !b.is_number()) return false;
    double x = a.get<double>(), y = b.get<double>();
    return std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.type() != b.type() || a.size() != b.size()) return false;
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!Same(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !Same(it.value(), b[it.key()])) return false;
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  baton::CarriedState state;
  if (!baton::DecodeCarriedState(std::string_view(reinterpret_cast<const char*>(data), size), state).ok()) return 0;
  std::string once = baton::EncodeCarriedState(state);
  baton::CarriedState again;
  if (!baton::DecodeCarriedState(once, again).ok()) __builtin_trap();
  if (!Same(nlohmann::json::parse(once), nlohmann::json::parse(baton::EncodeCarriedState(again)))) __builtin_trap();
  return 0;
}
