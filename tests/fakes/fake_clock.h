// A clock that moves only when a test says so. Timers fire in deadline order during
// Advance(), each with Now() equal to its deadline.
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "supervisor/base/clock.h"

namespace baton::testing {

class FakeClock : public Clock {
 public:
  SteadyTime Now() const override { return now_; }
  double WallSeconds() const override { return 1.7e9 + std::chrono::duration<double>(now_.time_since_epoch()).count(); }

  std::unique_ptr<Timer> After(Duration delay, std::function<void()> fn) override {
    uint64_t id = next_id_++;
    timers_[{now_ + delay, id}] = std::move(fn);
    return std::make_unique<FakeTimer>(this, now_ + delay, id);
  }

  // Moves time forward by `d`, firing every timer that falls due on the way.
  void Advance(Duration d) {
    SteadyTime target = now_ + d;
    while (!timers_.empty() && timers_.begin()->first.first <= target) {
      auto it = timers_.begin();
      now_ = std::max(now_, it->first.first);
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    now_ = target;
  }
  // Fires timers due now (zero-delay work), as the loop would.
  void RunDue() { Advance(Duration(0)); }
  size_t pending() const { return timers_.size(); }

 private:
  class FakeTimer : public Timer {
   public:
    FakeTimer(FakeClock* clock, SteadyTime at, uint64_t id) : clock_(clock), key_(at, id) {}
    ~FakeTimer() override { Cancel(); }
    void Cancel() override { clock_->timers_.erase(key_); }

   private:
    FakeClock* clock_;
    std::pair<SteadyTime, uint64_t> key_;
  };

  SteadyTime now_{std::chrono::hours(1)};
  uint64_t next_id_ = 1;
  std::map<std::pair<SteadyTime, uint64_t>, std::function<void()>> timers_;
};

}  // namespace baton::testing
