#pragma once
// Start-up feature probe: what this kernel offers the agent. One log line per
// missing feature; callers decide what is fatal.
#include <string>
#include <vector>

namespace sonde::bpf {

struct KernelFeatures {
  bool btf = false;                  // /sys/kernel/btf/vmlinux (CO-RE)
  bool tracefs = false;              // tracefs mounted (classic tracepoint ids)
  bool tracefs_mounted_by_us = false;
  bool ringbuf = false;              // BPF_MAP_TYPE_RINGBUF
  bool syscall_tracepoints = false;  // syscalls:sys_enter_* / sys_exit_*
  bool sock_tracepoints = false;     // sock:inet_sock_set_state
  bool tcp_tracepoints = false;      // tcp:tcp_retransmit_skb ...
  bool perf_event = false;           // BPF_PROG_TYPE_PERF_EVENT
  bool kprobes = false;              // informational: never required
  bool uprobes = false;              // uprobes can be placed one way or the other (TLS plaintext)
  bool uprobe_pmu = false;           // the uprobe PMU opens on a real function (needs CAP_SYS_ADMIN on patched kernels)
  bool uprobe_pmu_denied = false;    // ... because this process lacks the right (CAP_SYS_ADMIN), not the kernel
  bool uprobe_multi = false;         // a uprobe_multi link attaches (6.6+, CAP_BPF + CAP_PERFMON)
  std::string tracefs_path;          // where the events/ tree lives
  std::vector<std::string> problems; // human-readable, one per missing feature
  std::vector<std::string> missing_capabilities;  // "CAP_BPF", "CAP_PERFMON" when neither they nor CAP_SYS_ADMIN are held

  // Socket capture needs BTF, tracefs, ring buffers and syscall tracepoints.
  bool CanCaptureSockets() const { return btf && tracefs && ringbuf && syscall_tracepoints; }
};

// Probes the running kernel. Mounts tracefs at /sys/kernel/tracing when it is
// missing and we are allowed to (root).
KernelFeatures ProbeKernelFeatures(bool mount_tracefs_if_missing = true);

// Logs one line per feature (info for present, warn for missing).
void LogKernelFeatures(const KernelFeatures& features);

}  // namespace sonde::bpf
