#pragma once
// uprobe_multi links (kernel 6.6+) created with the bpf() syscall: libbpf 1.1
// predates them. They are the way to place uprobes without CAP_SYS_ADMIN:
// since the fix for CVE-2025-38466 the uprobe PMU (perf_event_open, what
// bpf_program__attach_uprobe uses) wants CAP_SYS_ADMIN, while a uprobe_multi
// link needs only what loading the program needed (CAP_BPF + CAP_PERFMON).
// A program linked this way must have been loaded with expected attach type
// kBpfTraceUprobeMulti (bpf_program__set_expected_attach_type before load).
#include <cstdint>
#include <string>

#include "agent/bpf/libbpf_raii.h"

namespace sonde::bpf {

// enum bpf_attach_type BPF_TRACE_UPROBE_MULTI and BPF_F_UPROBE_MULTI_RETURN
// (uapi linux/bpf.h, 6.6): Debian 12's headers predate them.
inline constexpr uint32_t kBpfTraceUprobeMulti = 48;
inline constexpr uint32_t kBpfUprobeMultiReturn = 1;

// Links `prog_fd` to the instruction at file offset `offset` of `path` (a
// return probe of the function there when `return_probe`), in process `pid`
// only, or in every process mapping the file when pid is 0. An invalid fd
// with errno set on failure; closing the fd detaches.
UniqueFd CreateUprobeMultiLink(int prog_fd, const std::string& path, uint64_t offset, bool return_probe,
                               uint32_t pid);

}  // namespace sonde::bpf
