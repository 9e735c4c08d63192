#include "agent/tls/probe_sites.h"

#include <capstone/capstone.h>

#include <memory>
#include <set>
#include <vector>

namespace sonde::tls {
namespace {

struct CapstoneHandle {
  csh handle = 0;
  bool ok = false;
  CapstoneHandle() {
    ok = cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK;
    if (ok) cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~CapstoneHandle() {
    if (ok) cs_close(&handle);
  }
  CapstoneHandle(const CapstoneHandle&) = delete;
  CapstoneHandle& operator=(const CapstoneHandle&) = delete;
};

struct InsnDeleter {
  size_t count;
  void operator()(cs_insn* insn) const { cs_free(insn, count); }
};

bool InGroup(const cs_insn& insn, uint8_t group) {
  for (uint8_t i = 0; i < insn.detail->groups_count; ++i) {
    if (insn.detail->groups[i] == group) return true;
  }
  return false;
}

// The immediate target of a relative jump/call, if it has one.
std::optional<uint64_t> ImmediateTarget(const cs_insn& insn) {
  const cs_x86& x = insn.detail->x86;
  if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM) return static_cast<uint64_t>(x.operands[0].imm);
  return std::nullopt;
}

// Instructions the kernel's x86 uprobe code emulates instead of
// single-stepping (arch/x86/kernel/uprobes.c, branch_setup_xol_ops): jmp
// rel8/rel32, jcc rel8/rel32, and a one-byte nop.
bool Emulated(const cs_insn& insn) {
  if (insn.id == X86_INS_NOP) return insn.size == 1;
  if (!InGroup(insn, CS_GRP_JUMP) || !ImmediateTarget(insn)) return false;
  return insn.id != X86_INS_JRCXZ && insn.id != X86_INS_JECXZ && insn.id != X86_INS_JCXZ &&
         insn.id != X86_INS_LOOP && insn.id != X86_INS_LOOPE && insn.id != X86_INS_LOOPNE;
}

bool Writes(csh handle, const cs_insn& insn, const std::set<x86_reg>& regs) {
  cs_regs read{}, written{};
  uint8_t n_read = 0, n_written = 0;
  if (cs_regs_access(handle, &insn, read, &n_read, written, &n_written) != CS_ERR_OK) return true;  // unknown: assume so
  for (uint8_t i = 0; i < n_written; ++i) {
    if (regs.count(static_cast<x86_reg>(written[i])) != 0) return true;
  }
  return false;
}

const std::set<x86_reg> kArgRegs = {X86_REG_RDI, X86_REG_EDI, X86_REG_DI,  X86_REG_DIL, X86_REG_RSI, X86_REG_ESI,
                                    X86_REG_SI,  X86_REG_SIL, X86_REG_RCX, X86_REG_ECX, X86_REG_CX,  X86_REG_CL,
                                    X86_REG_CH};
const std::set<x86_reg> kResultRegs = {X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH};

}  // namespace

std::optional<ProbeSites> FindProbeSites(std::span<const uint8_t> code, uint64_t address) {
  if (code.empty()) return std::nullopt;
  CapstoneHandle cs;
  if (!cs.ok) return std::nullopt;
  cs_insn* raw = nullptr;
  const size_t count = cs_disasm(cs.handle, code.data(), code.size(), address, 0, &raw);
  if (count == 0) return std::nullopt;
  std::unique_ptr<cs_insn, InsnDeleter> insns(raw, InsnDeleter{count});
  const uint64_t end = address + code.size();

  // Whole function decoded; every jump stays inside it and is direct; one ret.
  uint64_t decoded = 0;
  std::set<uint64_t> targets;
  size_t ret_index = count;
  for (size_t i = 0; i < count; ++i) {
    const cs_insn& insn = raw[i];
    decoded += insn.size;
    if (InGroup(insn, CS_GRP_RET) || InGroup(insn, CS_GRP_IRET) || InGroup(insn, CS_GRP_INT)) {
      if (ret_index != count || insn.id != X86_INS_RET) return std::nullopt;
      ret_index = i;
    } else if (InGroup(insn, CS_GRP_JUMP)) {
      const auto target = ImmediateTarget(insn);
      if (!target || *target < address || *target >= end) return std::nullopt;  // indirect or tail call
      targets.insert(*target);
    } else if (InGroup(insn, CS_GRP_CALL)) {
      if (!ImmediateTarget(insn)) return std::nullopt;  // a call through a register: keep it simple
    }
  }
  if (decoded != code.size() || ret_index == count) return std::nullopt;

  ProbeSites sites;
  // Exit: walking back from the ret over straight-line code that leaves %rax alone.
  if (targets.count(raw[ret_index].address) != 0) return std::nullopt;
  std::optional<uint64_t> exit;
  for (size_t i = ret_index; i-- > 0;) {
    const cs_insn& insn = raw[i];
    if (Emulated(insn) && insn.id != X86_INS_JMP) {  // falls through to the ret
      exit = insn.address - address;
      break;
    }
    if (targets.count(insn.address) != 0 || InGroup(insn, CS_GRP_JUMP) || InGroup(insn, CS_GRP_CALL) ||
        Writes(cs.handle, insn, kResultRegs))
      return std::nullopt;
  }
  if (!exit) return std::nullopt;
  sites.exit = *exit;

  // The exit jump must run once per call: when taken, it must not lead back
  // to itself (a jump to __stack_chk_fail does not; a loop would).
  const size_t exit_index = [&] {
    size_t i = 0;
    while (raw[i].address != address + sites.exit) ++i;
    return i;
  }();
  auto index_of = [&](uint64_t addr) -> std::optional<size_t> {
    for (size_t i = 0; i < count; ++i)
      if (raw[i].address == addr) return i;
    return std::nullopt;  // inside an instruction: not a clean target
  };
  std::set<size_t> seen;
  std::vector<size_t> todo;
  if (const auto t = ImmediateTarget(raw[exit_index])) {
    const auto ti = index_of(*t);
    if (!ti) return std::nullopt;
    todo.push_back(*ti);
  }
  while (!todo.empty()) {
    const size_t i = todo.back();
    todo.pop_back();
    if (i >= count || !seen.insert(i).second) continue;
    if (i == exit_index) return std::nullopt;
    const cs_insn& insn = raw[i];
    if (insn.id == X86_INS_RET) continue;
    if (InGroup(insn, CS_GRP_JUMP)) {
      const auto ti = index_of(*ImmediateTarget(insn));
      if (!ti) return std::nullopt;
      todo.push_back(*ti);
      if (insn.id == X86_INS_JMP) continue;  // no fallthrough
    }
    todo.push_back(i + 1);
  }

  // Entry: the first emulated instruction of the straight-line prologue,
  // before the argument registers change.
  for (size_t i = 0; i < count; ++i) {
    const cs_insn& insn = raw[i];
    if (targets.count(insn.address) != 0) return std::nullopt;  // could run twice per call
    if (Emulated(insn)) {
      sites.entry = insn.address - address;
      // Two different probes, the entry first.
      if (sites.entry >= sites.exit) return std::nullopt;
      return sites;
    }
    if (InGroup(insn, CS_GRP_CALL) || InGroup(insn, CS_GRP_RET) || Writes(cs.handle, insn, kArgRegs))
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace sonde::tls
