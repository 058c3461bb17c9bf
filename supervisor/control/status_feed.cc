#include "supervisor/control/status_feed.h"

namespace baton {

StatusFeed::StatusFeed(Clock& clock, Duration interval, std::function<void()> send)
    : clock_(clock), interval_(interval), send_(std::move(send)) {}

// From the loop, not from here: the caller answers its client first.
void StatusFeed::Start() {
  soon_ = clock_.After(Duration(0), [this] { Send(); });
}

void StatusFeed::Changed() {
  if (soon_) return;  // one is already on its way
  soon_ = clock_.After(kGather, [this] { Send(); });
}

void StatusFeed::Send() {
  soon_.reset();
  every_ = clock_.After(interval_, [this] { Send(); });
  send_();  // last: it may end this feed
}

}  // namespace baton
