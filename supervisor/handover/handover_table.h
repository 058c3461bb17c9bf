// The handover, as a table: what each event of a worker does, by where the worker stands.
// Service::Dispatch looks the cell up here and runs the method of the same name; every
// worker event goes through it (service.cc).
#pragma once

namespace baton {

enum class WorkerEvent { kReady, kNotReady, kExited, kStopTimeout, kRestartDue };

// Where a worker stands: in the generation a handover is starting; in the live generation;
// or told to stop (its generation drains or failed, or a rolling handover retired it).
enum class WorkerStanding { kStarting, kLive, kStopping };

enum class HandoverCell {
  kNothing,
  kStartingWorkerReady,  // the last one ready: promote, or the next batch or step
  kFailHandover,         // the new generation will not serve; the live one carries on
  kStartingWorkerExit,   // -> FailHandover, or abort a progressive step
  kLiveWorkerReady,      // a restarted worker: noted
  kLiveWorkerNotReady,   // noted; the restart policy handles crashes
  kLiveWorkerExit,       // restart with backoff, or roll back while baking
  kRestartDue,           // the backoff ended: start it again
  kStoppingWorkerExit,   // the generation retires once none is left
  kStopTimeout,          // still running after stop.timeout: SIGKILL
};

// clang-format off
inline constexpr HandoverCell kHandoverTable[3][5] = {
//               ready                              not ready                          exited                             stop timeout                 restart due
/* starting */ {HandoverCell::kStartingWorkerReady, HandoverCell::kFailHandover,       HandoverCell::kStartingWorkerExit, HandoverCell::kNothing,     HandoverCell::kNothing},
/* live     */ {HandoverCell::kLiveWorkerReady,     HandoverCell::kLiveWorkerNotReady, HandoverCell::kLiveWorkerExit,     HandoverCell::kNothing,     HandoverCell::kRestartDue},
/* stopping */ {HandoverCell::kNothing,             HandoverCell::kNothing,            HandoverCell::kStoppingWorkerExit, HandoverCell::kStopTimeout, HandoverCell::kNothing},
};
// clang-format on

constexpr HandoverCell CellFor(WorkerStanding standing, WorkerEvent event) {
  return kHandoverTable[static_cast<int>(standing)][static_cast<int>(event)];
}

}  // namespace baton
