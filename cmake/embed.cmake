# cmake -DINPUT=file -DOUTPUT=file.cc -DSYMBOL=name -P embed.cmake
# Writes a C++ source defining `const unsigned char SYMBOL[]` and `SYMBOL_size` with the
# bytes of INPUT (the eBPF object, built by clang, carried inside batond).
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" length)
math(EXPR size "${length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by cmake/embed.cmake; do not edit.\n#include <cstddef>\n\nnamespace baton {\nextern const unsigned char ${SYMBOL}[] = {\n  ${bytes}\n};\nextern const std::size_t ${SYMBOL}_size = ${size};\n}  // namespace baton\n")
