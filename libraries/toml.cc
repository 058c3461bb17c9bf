// toml++, compiled once: TOML_HEADER_ONLY=0 wherever it is included, its implementation
// here.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
