// A test that cannot run on this machine says so instead of passing. SKIP_TEST(reason)
// prints the reason and returns from the test case; the test program (with
// tests/helpers/catch_main.cc) then exits with kSkipReturnCode, which ctest reports as
// "Skipped" through SKIP_RETURN_CODE. ctest runs each case in a process of its own, so one
// skip marks exactly one test. CI runs as root and fails when anything skips (./run).
#pragma once

#include <iostream>
#include <string>

namespace baton::test {

inline constexpr int kSkipReturnCode = 77;

inline bool& SkipFlag() {
  static bool skipped = false;
  return skipped;
}

inline void MarkSkipped(const std::string& reason) {
  std::cerr << "SKIPPED: " << reason << "\n";
  SkipFlag() = true;
}

}  // namespace baton::test

#define SKIP_TEST(reason)               \
  do {                                  \
    ::baton::test::MarkSkipped(reason); \
    return;                             \
  } while (0)
