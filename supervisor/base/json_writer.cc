#include "supervisor/base/json_writer.h"

#include <charconv>
#include <cmath>

#include "supervisor/base/json_text.h"

namespace baton {

void JsonWriter::Separate() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}

JsonWriter& JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  out_ += '}';
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  out_ += ']';
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  String(key);
  out_ += ':';
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view s) {
  Separate();
  for (unsigned char c : s) {
    // Anything but printable ASCII (escapes, UTF-8, bytes that are not UTF-8) is written
    // the way JsonText writes it, so both read the same.
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      out_ += JsonText(nlohmann::json(std::string(s)));
      return *this;
    }
  }
  out_ += '"';
  out_ += s;
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t n) {
  Separate();
  char buf[24];
  out_.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t n) {
  Separate();
  char buf[24];
  out_.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
  return *this;
}

JsonWriter& JsonWriter::Double(double d) {
  if (!std::isfinite(d)) return Null();  // as nlohmann writes them
  Separate();
  char buf[32];
  std::string_view text(buf, std::to_chars(buf, buf + sizeof buf, d).ptr - buf);
  out_ += text;
  if (text.find_first_of(".e") == std::string_view::npos) out_ += ".0";  // still reads as a float
  return *this;
}

JsonWriter& JsonWriter::Bool(bool b) {
  Separate();
  out_ += b ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  Separate();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::Value(const nlohmann::json& j) {
  Separate();
  out_ += JsonText(j);
  return *this;
}

JsonWriter& JsonWriter::Members(const nlohmann::json& object) {
  for (const auto& [key, value] : object.items()) Key(key).Value(value);
  return *this;
}

}  // namespace baton
