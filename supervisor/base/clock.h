// The time seam. Decisions (handover, health, backoff) ask a Clock for the time and for
// timers, so tests drive them with a fake clock and no sleeps. The real clock wraps
// asio::steady_timer on the single event loop.
//
// A Timer fires its callback once unless cancelled; destroying it cancels it. Callbacks run
// on the loop thread, never from inside After().
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace baton {

using Duration = std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

class Timer {
 public:
  virtual ~Timer() = default;
  virtual void Cancel() = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  // Seconds since the Unix epoch, for records shown to people.
  virtual double WallSeconds() const = 0;
  [[nodiscard]] virtual std::unique_ptr<Timer> After(Duration delay, std::function<void()> fn) = 0;
};

std::unique_ptr<Clock> MakeAsioClock(boost::asio::io_context& io);

}  // namespace baton
