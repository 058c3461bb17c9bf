#include <catch2/catch.hpp>

#include "supervisor/config/config.h"

TEST_CASE("placeholder") { REQUIRE(true); }
