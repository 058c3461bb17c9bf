#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "supervisor/base/clock.h"
#include "supervisor/base/lifetime.h"

namespace baton {
namespace {

class AsioTimer : public Timer {
 public:
  AsioTimer(boost::asio::io_context& io, Duration delay, std::function<void()> fn) : timer_(io, delay) {
    timer_.async_wait([alive = alive_.token(), fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec && alive) fn();
    });
  }
  ~AsioTimer() override { Cancel(); }
  void Cancel() override {
    alive_.End();
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  Lifetime alive_;  // ended once cancelled: a late completion is ignored
};

class AsioClock : public Clock {
 public:
  explicit AsioClock(boost::asio::io_context& io) : io_(io) {}
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  double WallSeconds() const override {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  std::unique_ptr<Timer> After(Duration delay, std::function<void()> fn) override {
    return std::make_unique<AsioTimer>(io_, delay, std::move(fn));
  }

 private:
  boost::asio::io_context& io_;
};

}  // namespace

std::unique_ptr<Clock> MakeAsioClock(boost::asio::io_context& io) { return std::make_unique<AsioClock>(io); }

}  // namespace baton
