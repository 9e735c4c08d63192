#include "agent/bpf/feature_probe.h"

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

// Opens (and closes) a uprobe perf event on our own entry point: what the
// TLS attacher does for SSL_read, minus the BPF program. *denied is set when
// the kernel refused for lack of privilege (some kernels want CAP_SYS_ADMIN
// for the uprobe PMU even with CAP_PERFMON), not for lack of the feature.
bool UprobesWork(bool* denied) {
  *denied = false;
  std::ifstream type_file("/sys/bus/event_source/devices/uprobe/type");
  int pmu_type = -1;
  if (!(type_file >> pmu_type) || pmu_type < 0) return false;
  if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, nullptr) != 1) return false;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  uint64_t offset = 0;
  if (!EntryPointFileOffset(exe, &offset)) return false;
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = static_cast<uint32_t>(pmu_type);
  attr.config1 = reinterpret_cast<uint64_t>(exe);  // uprobe_path
  attr.config2 = offset;                           // probe_offset
  const long fd = syscall(SYS_perf_event_open, &attr, -1 /*any pid*/, 0 /*cpu*/, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {
    *denied = errno == EACCES || errno == EPERM;
    return false;
  }
  close(static_cast<int>(fd));
  return true;
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
  bool uprobes_denied = false;
  f.uprobes = UprobesWork(&uprobes_denied);
  if (!f.uprobes && f.missing_capabilities.empty()) {
    f.problems.push_back(uprobes_denied ? "uprobes refused (perf_event_open: permission denied; this kernel wants "
                                          "CAP_SYS_ADMIN for the uprobe PMU): TLS plaintext (OpenSSL) not captured"
                                        : "uprobes unavailable: TLS plaintext (OpenSSL) not captured");
  }
  f.kprobes = fs::exists("/sys/kernel/tracing/kprobe_events", ec) ||
              fs::exists("/sys/kernel/debug/tracing/kprobe_events", ec);
  return f;
}

void LogKernelFeatures(const KernelFeatures& f) {
  spdlog::info("kernel features: btf={} tracefs={}{} ringbuf={} syscall_tp={} sock_tp={} tcp_tp={} "
               "perf_event={} uprobes={} kprobes={}",
               f.btf, f.tracefs, f.tracefs_mounted_by_us ? " (mounted by sonde)" : "", f.ringbuf,
               f.syscall_tracepoints, f.sock_tracepoints, f.tcp_tracepoints, f.perf_event, f.uprobes, f.kprobes);
  for (const auto& p : f.problems) spdlog::warn("feature missing: {}", p);
  if (!f.kprobes) spdlog::info("kprobes unavailable: using tracepoints only (by design, no loss)");
}

}  // namespace sonde::bpf
