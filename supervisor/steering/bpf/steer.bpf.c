// The eBPF program batond attaches to a kernel-steered listener's reuseport group
// (SO_ATTACH_REUSEPORT_EBPF, attach type SELECT_OR_MIGRATE). It picks the socket of every
// new connection, datagram, and connection migrating off a closed listener:
//  - from `sockets`, a socket array indexed by batond's own slot numbers (so, unlike a
//    classic BPF program, it does not depend on the order of the group's sockets);
//  - by the route that `control.active` names of the two in `routes`: batond writes the
//    inactive one and then flips `active`, so a program run sees one whole route;
//  - exactly: pick n (a shared counter) takes position (n * 37) mod 100, which over every
//    100 picks visits each position once, spread out; the target whose cumulative weight
//    first exceeds the position gets it;
//  - UDP flows (by the kernel's 4-tuple hash) stay on the socket that got their first
//    datagram while they send at least every `control.flow_idle_ns` and that socket is
//    still in `sockets`; `kept` tells batond when a socket last got such a datagram, so a
//    draining generation is held while its flows go on.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#define MAX_TARGETS 8
#define MAX_SLOTS 64

struct route {
  __u32 count;              // targets in use
  __u32 slot[MAX_TARGETS];  // each target's slot in `sockets`
  __u32 upto[MAX_TARGETS];  // cumulative weights in percent: target i takes positions below upto[i]
};

struct control {
  __u32 active;  // which of `routes` is in force
  __u32 unused;
  __u64 flow_idle_ns;
};

struct flow {
  __u32 slot;
  __u32 unused;
  __u64 seen_ns;
};

struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, MAX_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct route);
} routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct control);
} control SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} picks SEC(".maps");

// When each slot last got a datagram of a flow it kept (a draining generation's flows).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MAX_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} kept SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct flow);
} flows SEC(".maps");

SEC("sk_reuseport/migrate")
int steer(struct sk_reuseport_md *ctx) {
  __u32 zero = 0;
  struct control *c = bpf_map_lookup_elem(&control, &zero);
  __u64 *counter = bpf_map_lookup_elem(&picks, &zero);
  if (!c || !counter) return SK_DROP;
  __u32 active = c->active & 1;
  struct route *r = bpf_map_lookup_elem(&routes, &active);
  if (!r) return SK_DROP;

  int udp = ctx->ip_protocol == IPPROTO_UDP && !ctx->migrating_sk;
  __u32 hash = ctx->hash;
  __u64 now = 0;
  if (udp) {
    now = bpf_ktime_get_ns();
    struct flow *f = bpf_map_lookup_elem(&flows, &hash);
    if (f && now - f->seen_ns < c->flow_idle_ns) {
      __u32 slot = f->slot;
      if (bpf_sk_select_reuseport(ctx, &sockets, &slot, 0) == 0) {
        f->seen_ns = now;
        __u64 *last = bpf_map_lookup_elem(&kept, &slot);
        if (last) *last = now;
        return SK_PASS;
      }
    }
  }

  __u64 n = __sync_fetch_and_add(counter, 1);
  __u32 position = (__u32)((n * 37) % 100);
  __u32 chosen = MAX_SLOTS;
  for (int i = 0; i < MAX_TARGETS; i++) {
    if (i >= r->count) break;
    if (position < r->upto[i]) {
      chosen = r->slot[i];
      break;
    }
  }
  if (chosen >= MAX_SLOTS || bpf_sk_select_reuseport(ctx, &sockets, &chosen, 0) != 0) {
    // The chosen socket is gone (a route being replaced): any other target will do.
    chosen = MAX_SLOTS;
    for (int i = 0; i < MAX_TARGETS; i++) {
      if (i >= r->count) break;
      __u32 slot = r->slot[i];
      if (bpf_sk_select_reuseport(ctx, &sockets, &slot, 0) == 0) {
        chosen = slot;
        break;
      }
    }
    if (chosen >= MAX_SLOTS) return SK_DROP;
  }
  if (udp) {
    struct flow nf = {.slot = chosen, .seen_ns = now};
    bpf_map_update_elem(&flows, &hash, &nf, BPF_ANY);
  }
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
