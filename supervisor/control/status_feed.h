// When a client following the status (GET /v1/status?follow=1: the dashboard, `batonctl
// top`) gets a fresh one: at once; shortly after something happens, a burst of events
// gathered into one; and every `interval` in between, for the figures that move without an
// event (RSS, CPU, proxied connections). The server pushes: the client never polls.
#pragma once

#include <functional>
#include <memory>

#include "supervisor/base/clock.h"

namespace baton {

class StatusFeed {
 public:
  static constexpr Duration kGather{100};  // after an event, wait this long for the rest of a burst

  StatusFeed(Clock& clock, Duration interval, std::function<void()> send);
  // The first status goes out at once (from the loop).
  void Start();
  // Something happened: a status goes out within kGather.
  void Changed();

 private:
  void Send();

  Clock& clock_;
  Duration interval_;
  std::function<void()> send_;
  std::unique_ptr<Timer> soon_, every_;
};

}  // namespace baton
