#include "supervisor/config/env_file.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace baton {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

bool IsName(const std::string& key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  for (char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Reads one value from text[i], where it starts, to the end of its line; sets `error`
// on an unterminated quote.
std::string ReadValue(std::string_view text, size_t& i, int& line, std::string& error) {
  std::string value;
  size_t kept = 0;  // length of the value up to its last character that is not unquoted blank
  while (i < text.size() && text[i] != '\n') {
    char c = text[i++];
    if (c == '\\') {
      if (i >= text.size()) break;
      char next = text[i++];
      if (next == '\n') {
        ++line;
        continue;
      }
      value += next;
      kept = value.size();
    } else if (c == '\'') {
      size_t end = text.find('\'', i);
      if (end == std::string_view::npos) {
        error = "a single quote is not closed";
        return value;
      }
      for (size_t k = i; k < end; ++k) line += text[k] == '\n';
      value.append(text.substr(i, end - i));
      i = end + 1;
      kept = value.size();
    } else if (c == '"') {
      bool closed = false;
      while (i < text.size()) {
        char d = text[i++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\n') ++line;
        if (d == '\\' && i < text.size()) {
          char next = text[i++];
          if (next == '\n') {
            ++line;
            continue;
          }
          if (next != '"' && next != '\\' && next != '`' && next != '$') value += '\\';
          value += next;
          continue;
        }
        value += d;
      }
      if (!closed) {
        error = "a double quote is not closed";
        return value;
      }
      kept = value.size();
    } else {
      value += c;
      if (!IsBlank(c)) kept = value.size();
    }
  }
  value.resize(kept);
  return value;
}

}  // namespace

Result<EnvList> ParseEnvironmentFile(std::string_view text, const std::string& path) {
  EnvList out;
  int line = 1;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsBlank(text[i])) ++i;
    int at = line;
    if (i >= text.size()) break;
    if (text[i] == '\n' || text[i] == '#' || text[i] == ';') {
      size_t end = text.find('\n', i);
      i = end == std::string_view::npos ? text.size() : end + 1;
      ++line;
      continue;
    }
    size_t eq = text.find_first_of("=\n", i);
    auto where = [&](int n) { return path + ":" + std::to_string(n) + ": "; };
    if (eq == std::string_view::npos || text[eq] != '=')
      return Status::InvalidArgument(where(at) + "expected KEY=VALUE");
    std::string key(text.substr(i, eq - i));
    while (!key.empty() && IsBlank(key.back())) key.pop_back();
    if (!IsName(key))
      return Status::InvalidArgument(where(at) + "'" + key + "' is not a variable name (letters, digits and _)");
    i = eq + 1;
    while (i < text.size() && IsBlank(text[i])) ++i;
    std::string error;
    std::string value = ReadValue(text, i, line, error);
    if (!error.empty()) return Status::InvalidArgument(where(at) + key + ": " + error);
    out.emplace_back(std::move(key), std::move(value));
    if (i < text.size()) ++i, ++line;  // the newline
  }
  return out;
}

Result<EnvList> ReadEnvironmentFiles(const std::vector<std::string>& files) {
  EnvList out;
  for (const std::string& entry : files) {
    bool optional = !entry.empty() && entry[0] == '-';
    std::string path = optional ? entry.substr(1) : entry;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (optional && errno == ENOENT) continue;
      return Status::InvalidArgument("env_file " + path + ": " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > kMaxFileBytes)
      return Status::InvalidArgument("env_file " + path + ": larger than " + std::to_string(kMaxFileBytes) + " bytes");
    auto parsed = ParseEnvironmentFile(text.str(), path);
    if (!parsed.ok()) return Status::InvalidArgument("env_file " + parsed.status().message());
    for (auto& kv : *parsed) out.push_back(std::move(kv));
  }
  return out;
}

}  // namespace baton
