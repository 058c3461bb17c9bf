// Catch2's main, plus: a run in which a test called SKIP_TEST and nothing failed exits with
// kSkipReturnCode, so that ctest shows the test as skipped, not passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "tests/helpers/skip.h"

int main(int argc, char** argv) {
  int failed = Catch::Session().run(argc, argv);
  if (failed == 0 && baton::test::SkipFlag()) return baton::test::kSkipReturnCode;
  return failed;
}
