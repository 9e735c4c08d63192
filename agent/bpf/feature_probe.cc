#include "agent/bpf/feature_probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <linux/perf_event.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "agent/bpf/uprobe_multi.h"

namespace sonde::bpf {
namespace fs = std::filesystem;
namespace {

std::string FindTracefs() {
  for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    std::error_code ec;
    if (fs::exists(fs::path(p) / "events", ec)) return p;
  }
  return {};
}

// File offset of this executable's entry point: an instruction a uprobe can sit on.
bool EntryPointFileOffset(const char* path, uint64_t* offset) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr eh{};
  if (!in.read(reinterpret_cast<char*>(&eh), sizeof(eh)) || eh.e_ident[EI_CLASS] != ELFCLASS64) return false;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    if (!in.read(reinterpret_cast<char*>(&ph), sizeof(ph))) return false;
    if (ph.p_type == PT_LOAD && eh.e_entry >= ph.p_vaddr && eh.e_entry < ph.p_vaddr + ph.p_filesz) {
      *offset = eh.e_entry - ph.p_vaddr + ph.p_offset;
      return true;
    }
  }
  return false;
}

// Path and file offset of this executable's entry point: an instruction a
// uprobe can sit on.
bool OwnEntryPoint(std::string* path, uint64_t* offset) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  *path = exe;
  return EntryPointFileOffset(exe, offset);
}

// Opens (and closes) a uprobe perf event on our own entry point: what the
// TLS attacher does for SSL_read through the uprobe PMU, minus the BPF
// program. *denied is set when the kernel refused for lack of privilege:
// since the fix for CVE-2025-38466 (July 2025, backported to 5.10+ stable
// kernels) the uprobe PMU wants CAP_SYS_ADMIN again, CAP_PERFMON is not
// enough.
bool UprobePmuWorks(bool* denied) {
  *denied = false;
  std::ifstream type_file("/sys/bus/event_source/devices/uprobe/type");
  int pmu_type = -1;
  if (!(type_file >> pmu_type) || pmu_type < 0) return false;
  if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, nullptr) != 1) return false;
  std::string exe;
  uint64_t offset = 0;
  if (!OwnEntryPoint(&exe, &offset)) return false;
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = static_cast<uint32_t>(pmu_type);
  attr.config1 = reinterpret_cast<uint64_t>(exe.c_str());  // uprobe_path
  attr.config2 = offset;                                   // probe_offset
  const long fd = syscall(SYS_perf_event_open, &attr, -1 /*any pid*/, 0 /*cpu*/, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {
    *denied = errno == EACCES || errno == EPERM;
    return false;
  }
  close(static_cast<int>(fd));
  return true;
}

// Loads a two-instruction uprobe_multi program and links it to our own entry
// point: the other way to place uprobes (kernel 6.6+), which asks for
// CAP_BPF + CAP_PERFMON only.
bool UprobeMultiWorks() {
  std::string exe;
  uint64_t offset = 0;
  if (!OwnEntryPoint(&exe, &offset)) return false;
  const bpf_insn return_zero[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0}};
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type = static_cast<bpf_attach_type>(kBpfTraceUprobeMulti);
  const int prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "sonde_probe", "GPL", return_zero, 2, &opts);
  if (prog < 0) return false;
  const UniqueFd program(prog);
  return CreateUprobeMultiLink(program.get(), exe, offset, /*return_probe=*/false, /*pid=*/0).valid();
}

// Whether this process holds `cap` in its effective set (/proc/self/status
// CapEff), so that a refused BPF probe is reported as missing privilege
// rather than as an old kernel.
bool HasEffectiveCapability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return ((std::stoull(line.substr(7), nullptr, 16) >> cap) & 1) != 0;
  }
  return false;
}

constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;  // linux/capability.h

}  // namespace

KernelFeatures ProbeKernelFeatures(bool mount_tracefs_if_missing) {
  KernelFeatures f;
  std::error_code ec;
  f.btf = fs::exists("/sys/kernel/btf/vmlinux", ec);
  if (!f.btf) f.problems.push_back("kernel BTF (/sys/kernel/btf/vmlinux) missing: CO-RE programs cannot load");

  f.tracefs_path = FindTracefs();
  if (f.tracefs_path.empty() && mount_tracefs_if_missing && geteuid() == 0) {
    fs::create_directories("/sys/kernel/tracing", ec);
    if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0) {
      f.tracefs_mounted_by_us = true;
      f.tracefs_path = FindTracefs();
    }
  }
  f.tracefs = !f.tracefs_path.empty();
  if (!f.tracefs) {
    // Without root the agent may not mount it (CAP_SYS_ADMIN): say what to do.
    f.problems.push_back(geteuid() == 0 || !mount_tracefs_if_missing
                             ? "tracefs not mounted and could not be mounted at /sys/kernel/tracing"
                             : "tracefs not mounted at /sys/kernel/tracing and a non-root agent may not mount it: "
                               "`mount -t tracefs tracefs /sys/kernel/tracing` or start sys-kernel-tracing.mount "
                               "(the sonde-agent unit wants it)");
  } else {
    const fs::path events = fs::path(f.tracefs_path) / "events";
    f.syscall_tracepoints = fs::exists(events / "syscalls" / "sys_enter_read", ec) &&
                            fs::exists(events / "syscalls" / "sys_exit_read", ec);
    f.sock_tracepoints = fs::exists(events / "sock" / "inet_sock_set_state", ec);
    f.tcp_tracepoints = fs::exists(events / "tcp" / "tcp_retransmit_skb", ec);
    if (!f.syscall_tracepoints)
      f.problems.push_back("syscall tracepoints (CONFIG_FTRACE_SYSCALLS) missing: no socket capture");
    if (!f.sock_tracepoints)
      f.problems.push_back("sock:inet_sock_set_state missing: connection state events disabled");
    if (!f.tcp_tracepoints)
      f.problems.push_back("tcp: tracepoints missing: retransmission/reset metrics disabled");
  }

  // Without CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) every BPF probe below
  // fails as if the kernel were old: say which privilege is missing instead.
  const bool admin = HasEffectiveCapability(kCapSysAdmin);
  for (const auto& [cap, name] : {std::pair{kCapBpf, "CAP_BPF"}, std::pair{kCapPerfmon, "CAP_PERFMON"}}) {
    if (!admin && !HasEffectiveCapability(cap)) f.missing_capabilities.push_back(name);
  }
  if (!f.missing_capabilities.empty()) {
    std::string names;
    for (const auto& c : f.missing_capabilities) names += (names.empty() ? "" : " and ") + c;
    f.problems.push_back("this process lacks " + names +
                         ": BPF programs cannot load (the agent needs CAP_BPF CAP_PERFMON CAP_NET_RAW "
                         "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH, or root; docs/deploy.md)");
  }
  f.ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1;
  if (!f.ringbuf && f.missing_capabilities.empty()) f.problems.push_back("BPF ring buffer unsupported (kernel < 5.8?)");
  f.perf_event = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_PERF_EVENT, nullptr) == 1;
  if (!f.perf_event && f.missing_capabilities.empty())
    f.problems.push_back("perf_event BPF programs unsupported: CPU profiling disabled");
  f.uprobe_pmu = UprobePmuWorks(&f.uprobe_pmu_denied);
  f.uprobe_multi = UprobeMultiWorks();
  f.uprobes = f.uprobe_pmu || f.uprobe_multi;
  if (!f.uprobes && f.missing_capabilities.empty()) {
    f.problems.push_back(f.uprobe_pmu_denied
                             ? "uprobes refused (perf_event_open of the uprobe PMU: permission denied, this kernel "
                               "wants CAP_SYS_ADMIN for it, and no uprobe_multi links before kernel 6.6): TLS "
                               "plaintext (OpenSSL) not captured"
                             : "uprobes unavailable: TLS plaintext (OpenSSL) not captured");
  }
  f.kprobes = fs::exists("/sys/kernel/tracing/kprobe_events", ec) ||
              fs::exists("/sys/kernel/debug/tracing/kprobe_events", ec);
  return f;
}

void LogKernelFeatures(const KernelFeatures& f) {
  spdlog::info("kernel features: btf={} tracefs={}{} ringbuf={} syscall_tp={} sock_tp={} tcp_tp={} "
               "perf_event={} uprobes={} (pmu={} multi={}) kprobes={}",
               f.btf, f.tracefs, f.tracefs_mounted_by_us ? " (mounted by sonde)" : "", f.ringbuf,
               f.syscall_tracepoints, f.sock_tracepoints, f.tcp_tracepoints, f.perf_event, f.uprobes, f.uprobe_pmu,
               f.uprobe_multi, f.kprobes);
  for (const auto& p : f.problems) spdlog::warn("feature missing: {}", p);
  if (!f.uprobe_pmu && f.uprobe_multi) {
    spdlog::info("uprobe PMU refused or absent (kernels since the CVE-2025-38466 fix want CAP_SYS_ADMIN for it): "
                 "TLS probes attach as uprobe_multi links, which CAP_BPF + CAP_PERFMON allow");
  }
  if (!f.kprobes) spdlog::info("kprobes unavailable: using tracepoints only (by design, no loss)");
}

}  // namespace sonde::bpf
