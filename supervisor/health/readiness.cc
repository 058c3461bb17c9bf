#include "supervisor/health/readiness.h"

#include "supervisor/base/duration.h"

namespace baton {

std::string Probe::Describe() const {
  switch (kind) {
    case Kind::kHttp: return "http " + target;
    case Kind::kTcp: return "tcp " + target;
    case Kind::kExec: {
      std::string s = "exec";
      for (const auto& a : argv) s += " " + a;
      return s;
    }
  }
  return "probe";
}

ReadinessCheck::ReadinessCheck(Clock& clock, ProbeRunner& runner, const ReadyConfig& config, std::vector<Probe> probes,
                               Done done)
    : clock_(clock), runner_(runner), config_(config), done_(std::move(done)) {
  for (auto& p : probes) {
    probes_.emplace_back();
    probes_.back().probe = std::move(p);
  }
}

ReadinessCheck::~ReadinessCheck() { alive_.End(); }

void ReadinessCheck::Start() {
  deadline_ = clock_.After(config_.timeout, [this] {
    Finish(Status::Timeout("not ready within " + FormatDuration(config_.timeout) + ": still waiting for " + Pending()));
  });
  if (config_.min_uptime.count() > 0) {
    uptime_ = clock_.After(config_.min_uptime, [this] {
      uptime_reached_ = true;
      MaybeDone();
    });
  } else {
    uptime_reached_ = true;
  }
  for (size_t i = 0; i < probes_.size(); ++i) Attempt(i);
  // With nothing to wait for, finish from the loop rather than inside Start().
  if (!config_.notify && probes_.empty() && uptime_reached_)
    uptime_ = clock_.After(Duration(0), [this] { MaybeDone(); });
}

void ReadinessCheck::OnNotifyReady() {
  notified_ = true;
  MaybeDone();
}

void ReadinessCheck::Attempt(size_t index) {
  if (finished_) return;
  ProbeState& st = probes_[index];
  st.in_flight = true;
  runner_.Run(st.probe, config_.probe_timeout, [this, index, alive = alive_.token()](Status result) {
    if (!alive || finished_) return;
    ProbeState& st = probes_[index];
    st.in_flight = false;
    if (result.ok()) {
      st.passed = true;
      MaybeDone();
      return;
    }
    st.last_error = result.message();
    st.retry = clock_.After(config_.interval, [this, index] { Attempt(index); });
  });
}

void ReadinessCheck::MaybeDone() {
  if (finished_ || !uptime_reached_ || (config_.notify && !notified_)) return;
  for (const auto& p : probes_)
    if (!p.passed) return;
  Finish(Status::Ok());
}

void ReadinessCheck::Finish(Status status) {
  if (finished_) return;
  finished_ = true;
  deadline_.reset();
  uptime_.reset();
  for (auto& p : probes_) p.retry.reset();
  auto done = std::move(done_);
  done(std::move(status));  // may destroy this
}

std::string ReadinessCheck::Pending() const {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (config_.notify && !notified_) add("READY=1 via sd_notify");
  for (const auto& p : probes_) {
    if (p.passed) continue;
    add(p.probe.Describe() + (p.last_error.empty() ? "" : " (" + p.last_error + ")"));
  }
  if (!uptime_reached_) add("min_uptime " + FormatDuration(config_.min_uptime));
  return out.empty() ? "nothing" : out;
}

}  // namespace baton
