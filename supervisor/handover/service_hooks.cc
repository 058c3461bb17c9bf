// [service.X.hooks]: commands run at points of a handover, as exec probes (the probe
// runner's timeout and kill), with the handover's facts in their environment.
#include "supervisor/handover/launch_spec.h"
#include "supervisor/handover/service.h"

namespace baton {

void Service::RunHook(const char* hook, const std::vector<std::string>& argv, const Generation* gen,
                      const std::string& from_version, const std::string& reason, std::function<void(Status)> then) {
  if (argv.empty()) {
    if (then) then(Status::Ok());
    return;
  }
  Probe probe;
  probe.kind = Probe::Kind::kExec;
  probe.argv = argv;
  probe.env = {{"PATH", WorkerPath(io_.base_env)},
               {"BATON_HOOK", hook},
               {"BATON_SERVICE", name()},
               {"BATON_VERSION", gen ? gen->release.version : ""},
               {"BATON_FROM_VERSION", from_version},
               {"BATON_GENERATION", gen ? std::to_string(gen->id) : ""},
               {"BATON_REASON", reason}};
  int64_t gen_id = gen ? gen->id : 0;
  std::string what = std::string(hook) + " hook";
  auto alive = alive_.token();
  probes_.Run(probe, config_.hooks.timeout, [this, alive, gen_id, what, then](Status s) {
    if (!alive) return;
    if (!s.ok()) {
      counters_.hook_failures++;
      Emit(EventType::kHookFailed, FindGen(gen_id), 0, what + " failed: " + s.message());
    }
    if (then) then(s);
  });
}

}  // namespace baton
