#include "supervisor/steering/ebpf_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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

// Which program this batond carries: a carried program is taken over only if it is this one.
const std::string& ProgramDigest() {
  static const std::string digest = [] {
    uint64_t hash = 14695981039346656037u;  // FNV-1a over the compiled object
    for (size_t i = 0; i < kSteerBpfObject_size; ++i) hash = (hash ^ kSteerBpfObject[i]) * 1099511628211u;
    return std::to_string(hash) + "/" + std::to_string(kSteerBpfObject_size);
  }();
  return digest;
}

// The program's descriptor in ExportProgram's answer, or -1.
int CarriedFd(const nlohmann::json& program) {
  if (!program.is_object() || !program.contains("fd") || !program["fd"].is_number_integer()) return -1;
  int64_t fd = program["fd"].get<int64_t>();
  return fd >= 0 && fd <= INT32_MAX ? static_cast<int>(fd) : -1;
}

// `max_entries` of the carried map `fd`, or 0 if it is not one.
uint32_t MaxEntries(const nlohmann::json& fd) {
  if (!fd.is_number_integer()) return 0;
  bpf_map_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd.get<int>(), &info, &len) == 0 ? info.max_entries : 0;
}

}  // namespace

Result<std::unique_ptr<EbpfProgram>> EbpfProgram::Load(std::chrono::milliseconds flow_idle, bool datagrams,
                                                       const nlohmann::json* carried_maps,
                                                       const nlohmann::json* carried_program) {
  auto program = std::unique_ptr<EbpfProgram>(new EbpfProgram());
  program->flow_idle_ = flow_idle;
  // A TCP group carried from a batond that gave every group a full flow table (empty, as
  // only UDP fills it) leaves that table behind: the program is loaded again around a
  // table of one, that once.
  const bool drop_flows = !datagrams && carried_maps && carried_maps->is_object() && carried_maps->contains("flows") &&
                          MaxEntries((*carried_maps)["flows"]) > 1;
  if (!drop_flows && carried_maps && carried_program && carried_program->is_object() &&
      carried_program->contains("digest") && (*carried_program)["digest"] == ProgramDigest()) {
    if (Status s = program->TakeCarried(*carried_maps, *carried_program); !s.ok()) return s;
  } else {
    libbpf_set_print(Quiet);
    bpf_object* object = bpf_object__open_mem(kSteerBpfObject, kSteerBpfObject_size, nullptr);
    if (!object) return Status::FromErrno("open the eBPF steering program", errno);
    std::unique_ptr<bpf_object, void (*)(bpf_object*)> closing(object, bpf_object__close);
    // A carried flow table keeps the size it was made with.
    if (bpf_map* flows = bpf_object__find_map_by_name(object, "flows"); flows && !datagrams)
      bpf_map__set_max_entries(flows, 1);
    if (carried_maps) {
      // libbpf keeps a duplicate of each; the carried descriptors are closed once the
      // program has loaded, and left open otherwise, for the previous batond program to
      // take back.
      for (const auto& [name, fd] : carried_maps->items()) {
        if (drop_flows && name == "flows") continue;  // closed with the others once loaded
        bpf_map* map = bpf_object__find_map_by_name(object, name.c_str());
        if (!map || !fd.is_number_integer())
          return Status::InvalidArgument("carried eBPF map '" + name + "' is not in this program");
        if (int err = bpf_map__reuse_fd(map, fd.get<int>()); err != 0)
          return Status::FromErrno("take over the carried eBPF map '" + name + "'", -err);
      }
      program->carried_ = true;
    }
    if (int err = bpf_object__load(object); err != 0) return Status::FromErrno("load the eBPF steering program", -err);
    if (Status s = program->TakeLoaded(object); !s.ok()) return s;
    // libbpf holds the maps now; a different program was carried: the one loaded here
    // replaces it at Attach.
    CloseCarried(carried_maps, carried_program);
  }
  if (program->carried_) {
    // Carry on from the route in force: the next one is written to the other slot.
    ControlValue control{};
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(program->MapFd("control"), &zero, &control) == 0) program->active_ = control.active & 1;
    return program;
  }
  if (Status s = program->Route({{0, 100}}); !s.ok()) return s;
  return program;
}

Status EbpfProgram::TakeLoaded(bpf_object* object) {
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (bpf_map__is_internal(map)) continue;  // the program holds those itself
    UniqueFd fd(::fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 0));
    if (!fd) return Status::FromErrno(std::string("keep the eBPF map '") + bpf_map__name(map) + "'", errno);
    maps_[bpf_map__name(map)] = std::move(fd);
  }
  bpf_program* steer = bpf_object__find_program_by_name(object, "steer");
  program_.Reset(steer ? ::fcntl(bpf_program__fd(steer), F_DUPFD_CLOEXEC, 0) : -1);
  if (!program_) return Status::FromErrno("keep the eBPF steering program", steer ? errno : ENOENT);
  return Status::Ok();
}

// The carried descriptors become this program's own, once all are there (until then,
// they stay open for the previous batond program to take back).
Status EbpfProgram::TakeCarried(const nlohmann::json& maps, const nlohmann::json& program) {
  for (const auto& [name, fd] : maps.items())
    if (!fd.is_number_integer() || fd.get<int>() < 0)
      return Status::InvalidArgument("carried eBPF map '" + name + "' has no descriptor");
  for (const char* name : {"sockets", "routes", "control", "kept"})
    if (!maps.contains(name)) return Status::InvalidArgument(std::string("carried eBPF map '") + name + "' is missing");
  int prog_fd = CarriedFd(program);
  if (prog_fd < 0) return Status::InvalidArgument("the carried eBPF steering program has no descriptor");
  for (const auto& [name, fd] : maps.items()) maps_[name] = UniqueFd(fd.get<int>());
  program_.Reset(prog_fd);
  carried_ = program_carried_ = true;
  return Status::Ok();
}

void EbpfProgram::CloseCarried(const nlohmann::json* maps, const nlohmann::json* program) {
  if (maps && maps->is_object())
    for (const auto& [name, fd] : maps->items())
      if (fd.is_number_integer() && fd.get<int>() >= 0) ::close(fd.get<int>());
  if (program && CarriedFd(*program) >= 0) ::close(CarriedFd(*program));
}

void EbpfProgram::Abandon() {
  if (!program_carried_) return;  // duplicates of libbpf's: closed as usual
  for (auto& [name, fd] : maps_) (void)fd.ReleaseOwnership();
  (void)program_.ReleaseOwnership();
}

nlohmann::json EbpfProgram::Export(std::vector<int>* keep) const {
  nlohmann::json maps = nlohmann::json::object();
  for (const auto& [name, fd] : maps_) {
    keep->push_back(fd.get());
    maps[name] = fd.get();
  }
  return maps;
}

nlohmann::json EbpfProgram::ExportProgram(std::vector<int>* keep) const {
  keep->push_back(program_.get());
  return {{"fd", program_.get()}, {"digest", ProgramDigest()}};
}

int EbpfProgram::MapFd(const char* name) const {
  auto it = maps_.find(name);
  return it == maps_.end() ? -1 : it->second.get();
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
  int prog_fd = program_.get();
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof prog_fd) != 0)
    return Status::FromErrno("attach the eBPF steering program", errno);
  return Status::Ok();
}

}  // namespace baton
