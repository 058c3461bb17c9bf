// Fuzz target: the state a self-upgrade carries (DecodeCarriedState). Whatever the bytes,
// the decoder answers without crashing; a state it accepts encodes to text that decodes
// again to the same encoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "supervisor/upgrade/carried_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  baton::CarriedState state;
  if (!baton::DecodeCarriedState(std::string_view(reinterpret_cast<const char*>(data), size), state).ok()) return 0;
  std::string once = baton::EncodeCarriedState(state);
  baton::CarriedState again;
  if (!baton::DecodeCarriedState(once, again).ok() || baton::EncodeCarriedState(again) != once) __builtin_trap();
  return 0;
}
