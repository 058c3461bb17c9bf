#include "supervisor/steering/cbpf_program.h"

#include <stdexcept>

namespace baton {

std::vector<sock_filter> BuildSteeringProgram(const std::vector<SteeringTarget>& targets) {
  std::vector<SteeringTarget> live;
  for (const auto& t : targets)
    if (t.weight > 0) live.push_back(t);
  std::vector<sock_filter> p;
  if (live.size() == 1) {
    p.push_back(BPF_STMT(BPF_RET | BPF_K, live[0].index));
    return p;
  }
  // A = random % 100; then for each target but the last: if A < cumulative, return it.
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)));
  p.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, 100));
  int cumulative = 0;
  for (size_t i = 0; i + 1 < live.size(); ++i) {
    cumulative += live[i].weight;
    // A >= cumulative: jump over the return (jt = 1), else fall into it (jf = 0).
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, static_cast<uint32_t>(cumulative), 1, 0));
    p.push_back(BPF_STMT(BPF_RET | BPF_K, live[i].index));
  }
  p.push_back(BPF_STMT(BPF_RET | BPF_K, live.back().index));
  return p;
}

uint32_t EvaluateSteeringProgram(const std::vector<sock_filter>& program, uint32_t random) {
  uint32_t a = 0;
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& i = program[pc];
    switch (i.code) {
      case BPF_LD | BPF_W | BPF_ABS: a = random; break;
      case BPF_ALU | BPF_MOD | BPF_K: a %= i.k; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += a >= i.k ? i.jt : i.jf; break;
      case BPF_RET | BPF_K: return i.k;
      default: throw std::logic_error("instruction not emitted by BuildSteeringProgram");
    }
  }
  throw std::logic_error("program ran off its end");
}

}  // namespace baton
