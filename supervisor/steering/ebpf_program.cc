#include "supervisor/steering/ebpf_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace baton {

extern const unsigned char kSteerBpfObject[];
extern const std::size_t kSteerBpfObject_size;

namespace {

// The program's map values (bpf/steer.bpf.c), laid out alike.
struct RouteValue {
  uint32_t count;
  uint32_t slot[EbpfProgram::kMaxTargets];
  uint32_t upto[EbpfProgram::kMaxTargets];
};
struct ControlValue {
  uint32_t active;
  uint32_t unused;
  uint64_t flow_idle_ns;
};

// libbpf prints to stderr by default; batond says what failed itself.
int Quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

}  // namespace

Result<std::unique_ptr<EbpfProgram>> EbpfProgram::Load(std::chrono::milliseconds flow_idle,
                                                       const nlohmann::json* carried) {
  libbpf_set_print(Quiet);
  bpf_object* object = bpf_object__open_mem(kSteerBpfObject, kSteerBpfObject_size, nullptr);
  if (!object) return Status::FromErrno("open the eBPF steering program", errno);
  auto program = std::unique_ptr<EbpfProgram>(new EbpfProgram(object));
  program->flow_idle_ = flow_idle;
  std::vector<int> carried_fds;
  if (carried) {
    // libbpf keeps a duplicate of each; the carried descriptors are closed once the program
    // has loaded, and left open otherwise, for the previous batond program to take back.
    for (const auto& [name, fd] : carried->items()) {
      bpf_map* map = bpf_object__find_map_by_name(object, name.c_str());
      if (!map || !fd.is_number_integer())
        return Status::InvalidArgument("carried eBPF map '" + name + "' is not in this program");
      carried_fds.push_back(fd.get<int>());
      if (int err = bpf_map__reuse_fd(map, carried_fds.back()); err != 0)
        return Status::FromErrno("take over the carried eBPF map '" + name + "'", -err);
    }
    program->carried_ = true;
  }
  if (int err = bpf_object__load(object); err != 0) return Status::FromErrno("load the eBPF steering program", -err);
  for (int fd : carried_fds) ::close(fd);
  if (carried) {
    // Carry on from the route in force: the next one is written to the other slot.
    ControlValue control{};
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(program->MapFd("control"), &zero, &control) == 0) program->active_ = control.active & 1;
    return program;
  }
  if (Status s = program->Route({{0, 100}}); !s.ok()) return s;
  return program;
}

nlohmann::json EbpfProgram::Export(std::vector<int>* keep) const {
  nlohmann::json maps = nlohmann::json::object();
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object_) {
    if (bpf_map__is_internal(map)) continue;
    keep->push_back(bpf_map__fd(map));
    maps[bpf_map__name(map)] = bpf_map__fd(map);
  }
  return maps;
}

EbpfProgram::~EbpfProgram() { bpf_object__close(object_); }

int EbpfProgram::MapFd(const char* name) const {
  bpf_map* map = bpf_object__find_map_by_name(object_, name);
  return map ? bpf_map__fd(map) : -1;
}

Status EbpfProgram::Place(uint32_t slot, int fd) {
  uint64_t value = static_cast<uint64_t>(fd);
  if (slot >= kSlots || bpf_map_update_elem(MapFd("sockets"), &slot, &value, BPF_ANY) != 0)
    return Status::FromErrno("place a socket in the eBPF steering program (slot " + std::to_string(slot) + ")", errno);
  uint64_t never = 0;  // a slot used before: its flows were another socket's
  bpf_map_update_elem(MapFd("kept"), &slot, &never, BPF_ANY);
  return Status::Ok();
}

void EbpfProgram::Remove(uint32_t slot) { bpf_map_delete_elem(MapFd("sockets"), &slot); }

Status EbpfProgram::Route(const std::vector<SlotWeight>& targets) {
  if (targets.empty() || targets.size() > kMaxTargets)
    return Status::InvalidArgument("a steering route needs 1 to " + std::to_string(kMaxTargets) + " targets");
  RouteValue route{};
  uint32_t upto = 0;
  for (const SlotWeight& t : targets) {
    upto += static_cast<uint32_t>(t.weight);
    route.slot[route.count] = t.slot;
    route.upto[route.count++] = upto;
  }
  // The inactive route is written whole, then made the active one in a single update.
  uint32_t next = active_ ^ 1;
  if (bpf_map_update_elem(MapFd("routes"), &next, &route, BPF_ANY) != 0)
    return Status::FromErrno("write the eBPF steering route", errno);
  ControlValue control{next, 0, static_cast<uint64_t>(std::chrono::nanoseconds(flow_idle_).count())};
  uint32_t zero = 0;
  if (bpf_map_update_elem(MapFd("control"), &zero, &control, BPF_ANY) != 0)
    return Status::FromErrno("switch the eBPF steering route", errno);
  active_ = next;
  return Status::Ok();
}

bool EbpfProgram::KeepsFlows(uint32_t slot) const {
  uint64_t last = 0;
  if (bpf_map_lookup_elem(MapFd("kept"), &slot, &last) != 0 || last == 0) return false;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);  // the clock of bpf_ktime_get_ns
  uint64_t now_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
  return now_ns - last < static_cast<uint64_t>(std::chrono::nanoseconds(flow_idle_).count());
}

Status EbpfProgram::Attach(int fd) const {
  bpf_program* program = bpf_object__find_program_by_name(object_, "steer");
  int prog_fd = program ? bpf_program__fd(program) : -1;
  if (prog_fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof prog_fd) != 0)
    return Status::FromErrno("attach the eBPF steering program", errno);
  return Status::Ok();
}

}  // namespace baton
