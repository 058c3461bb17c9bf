// Compact JSON written straight to text, for answers too big to build as a tree first: the
// status of a thousand workers costs a few hundred microseconds this way, several
// milliseconds as nlohmann::json objects (an allocation per key and value, then a walk to
// dump them). Small parts can still be built as trees and written in with Value().
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace baton {

class JsonWriter {
 public:
  // Room for `bytes` of text, so that a large answer is not copied as it grows.
  void Reserve(size_t bytes) { out_.reserve(bytes); }

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view s);
  JsonWriter& Int(int64_t n);
  JsonWriter& Uint(uint64_t n);
  JsonWriter& Double(double d);
  JsonWriter& Bool(bool b);
  JsonWriter& Null();
  JsonWriter& Value(const nlohmann::json& j);
  // Every member of `object` as key and value, inside the object being written.
  JsonWriter& Members(const nlohmann::json& object);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Separate();  // a comma before the second and later values of an array or object

  std::string out_;
  bool need_comma_ = false;
};

}  // namespace baton
