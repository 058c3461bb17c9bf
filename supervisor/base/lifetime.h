// Whether what queued a callback on the loop still exists, or still wants it: the owner
// holds a Lifetime, each callback captures a token and tests it first. Ending the Lifetime
// (or destroying it) turns every token false; a token keeps its flag alive by itself.
#pragma once

#include <memory>

namespace baton {

class Lifetime {
 public:
  class Token {
   public:
    explicit operator bool() const { return *alive_; }

   private:
    friend class Lifetime;
    explicit Token(std::shared_ptr<const bool> alive) : alive_(std::move(alive)) {}
    std::shared_ptr<const bool> alive_;
  };

  Lifetime() = default;
  Lifetime(const Lifetime&) = delete;
  Lifetime& operator=(const Lifetime&) = delete;
  ~Lifetime() { End(); }

  Token token() const { return Token(alive_); }
  void End() { *alive_ = false; }

 private:
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace baton
