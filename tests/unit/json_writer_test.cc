// JsonWriter: the text it writes reads back as the same JSON a tree would dump.
#include <catch2/catch.hpp>

#include <limits>

#include "supervisor/base/json_text.h"
#include "supervisor/base/json_writer.h"

using namespace baton;

TEST_CASE("json writer: nesting and commas") {
  JsonWriter w;
  w.BeginObject().Key("a").Int(-1).Key("b").BeginArray().Uint(2).Bool(true).Null().BeginObject().EndObject();
  w.BeginArray().EndArray().EndArray().Key("c").String("x").EndObject();
  CHECK(w.text() == R"({"a":-1,"b":[2,true,null,{},[]],"c":"x"})");
}

TEST_CASE("json writer: strings are escaped as JsonText escapes them") {
  for (std::string s :
       {std::string("plain"), std::string("quote \" and \\ slash"), std::string("line\nbreak\t\x01"),
        std::string("caf\xc3\xa9"), std::string("not utf-8 \xff\xfe"), std::string("\x7f"), std::string()}) {
    JsonWriter w;
    w.String(s);
    CHECK(w.text() == JsonText(nlohmann::json(s)));
    CHECK_NOTHROW(nlohmann::json::parse(w.text()));
  }
}

TEST_CASE("json writer: numbers") {
  JsonWriter w;
  w.BeginArray().Double(1764600000.125).Double(2).Double(0.1).Double(std::numeric_limits<double>::infinity());
  w.Int(std::numeric_limits<int64_t>::min()).Uint(std::numeric_limits<uint64_t>::max()).EndArray();
  nlohmann::json back = nlohmann::json::parse(w.text());
  CHECK(back[0].get<double>() == 1764600000.125);
  CHECK(back[1].is_number_float());
  CHECK(back[1].get<double>() == 2.0);
  CHECK(back[2].get<double>() == 0.1);
  CHECK(back[3].is_null());
  CHECK(back[4].get<int64_t>() == std::numeric_limits<int64_t>::min());
  CHECK(back[5].get<uint64_t>() == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("json writer: trees written in") {
  nlohmann::json fields = {{"name", "web"}, {"replicas", 2}, {"tags", {"a", "b"}}};
  JsonWriter w;
  w.BeginObject().Members(fields).Key("health").Value({{"ok", true}}).EndObject();
  nlohmann::json expected = fields;
  expected["health"] = {{"ok", true}};
  CHECK(nlohmann::json::parse(w.text()) == expected);
  JsonWriter empty;
  empty.BeginObject().Members(nlohmann::json::object()).EndObject();
  CHECK(empty.text() == "{}");
}
