// A TrafficSteering that records what the Service asks of it: the sockets opened per
// generation, every routing, the releases and the retirements; queue lengths are set by the test.
#pragma once

#include <catch2/catch.hpp>

#include <cerrno>
#include <map>
#include <vector>

#include "supervisor/handover/steering.h"

namespace baton::testing {

class FakeSteering : public TrafficSteering {
 public:
  static constexpr int kAnchorFd = 7;  // the listener's first socket, as in the harness

  Result<std::map<std::string, int>> Open(int64_t gen, bool take_anchor) override {
    if (fail_open) return Status::FromErrno("bind listener 'http'", EADDRINUSE);
    opened.emplace_back(gen, take_anchor);
    return std::map<std::string, int>{{"http", take_anchor ? kAnchorFd : 100 + static_cast<int>(gen)}};
  }
  void Route(const std::vector<GenerationWeight>& weights) override { routes.push_back(weights); }
  size_t Queued(int64_t gen) const override {
    auto it = queued.find(gen);
    return it == queued.end() ? 0 : it->second;
  }
  void Release(int64_t gen) override { released.push_back(gen); }
  void Retire(int64_t gen) override { retired.push_back(gen); }

  // Whether any routing so far gave `gen` a share.
  bool EverRouted(int64_t gen) const {
    for (const auto& r : routes)
      for (const auto& w : r)
        if (w.generation == gen && w.weight > 0) return true;
    return false;
  }
  std::vector<GenerationWeight> last() const {
    return routes.empty() ? std::vector<GenerationWeight>{} : routes.back();
  }

  bool fail_open = false;
  std::vector<std::pair<int64_t, bool>> opened;
  std::vector<std::vector<GenerationWeight>> routes;
  std::map<int64_t, size_t> queued;
  std::vector<int64_t> released;  // told to stop: nothing more goes to their sockets
  std::vector<int64_t> retired;
};

}  // namespace baton::testing

namespace Catch {
template <>
struct StringMaker<baton::GenerationWeight> {
  static std::string convert(const baton::GenerationWeight& w) {
    return std::to_string(w.generation) + ":" + std::to_string(w.weight) + "%";
  }
};
}  // namespace Catch
