// A probe runner whose attempts stay pending until the test completes them.
#pragma once

#include <deque>

#include "supervisor/health/probe.h"

namespace baton::testing {

class FakeProbeRunner : public ProbeRunner {
 public:
  struct Attempt {
    Probe probe;
    std::function<void(Status)> done;
  };
  void Run(const Probe& probe, Duration, std::function<void(Status)> done) override {
    attempts.push_back({probe, std::move(done)});
  }
  // Completes the oldest pending attempt.
  void CompleteNext(Status s) {
    auto a = std::move(attempts.front());
    attempts.pop_front();
    a.done(std::move(s));
  }
  std::deque<Attempt> attempts;
};

}  // namespace baton::testing
