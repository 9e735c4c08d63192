#include "agent/capture/socket_capture.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "agent/bpf/abi_checks.h"
#include "agent/bpf/libbpf_raii.h"
#include "agent/bpf/ring_set.h"
#include "agent/bpf/uprobe_multi.h"
#include "agent/capture/tls_transition.h"
#include "agent/core/clock.h"
#include "socket_trace.skel.h"

namespace sonde::capture {
namespace {

using SocketTraceSkeleton = bpf::Skeleton<socket_trace, socket_trace__open, socket_trace__load,
                                          socket_trace__attach, socket_trace__destroy>;

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

uint64_t PerCpuRingBytes(uint32_t total_bytes, uint32_t cpus) {
  uint64_t share = total_bytes / std::max<uint32_t>(cpus, 1);
  uint64_t bytes = 1;
  while (bytes < share) bytes <<= 1;
  return std::max<uint64_t>(bytes, std::min<uint64_t>(total_bytes, kMinPerCpuRingBytes));
}

namespace {

template <typename Key>
absl::Status PutFilter(int map_fd, Key key, uint8_t action, const char* what) {
  if (bpf_map_update_elem(map_fd, &key, &action, BPF_ANY) != 0) {
    return absl::InternalError(absl::StrCat("setting ", what, " filter failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

struct SocketCapture::Impl {
  SocketTraceSkeleton skel;
  std::unique_ptr<bpf::RingSet> rings;  // one per CPU
  std::unique_ptr<tls::TlsAttacher> tls;  // declared after skel: detaches before the programs go
  const EventCallback* callback = nullptr;  // valid during Poll only
  SourceCounters counters;
  TlsTransitions tls_transitions;  // first plaintext of a socket: close its ciphertext connection

  explicit Impl(SocketTraceSkeleton s) : skel(std::move(s)) {}

  static int OnRecord(void* ctx, const uint8_t* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    RawEvent ev(data, size);
    const sonde_event_header* hdr = AsHeader(ev);
    if (hdr == nullptr) {
      ++self->counters.malformed;
      return 0;
    }
    // Payload records are reserved by size class: only hdr->size bytes count.
    ev = ev.first(hdr->size);
    ++self->counters.events;
    self->tls_transitions.Deliver(ev, *self->callback);
    // A drain handles tens of milliseconds of traffic at once. Yielding every
    // few dozen events lets a traced process waiting for this CPU run in
    // between instead of after the whole burst (its tail latency) -- but only
    // while the agent keeps up: events older than one drain period and a
    // half mean it is behind, and then it must run flat out or the ring
    // buffer overflows.
    if ((++self->drained_this_poll % kYieldEvery) == 0 && self->poll_start_ns > hdr->ts_exit_ns &&
        self->poll_start_ns - hdr->ts_exit_ns < self->keeping_up_ns) {
      // (A 100 µs EEVDF slice instead of these yields: latency p99 +1.1 ms in bench/overhead.)
      sched_yield();
    }
    return 0;
  }
  static constexpr uint64_t kYieldEvery = 32;
  uint64_t drained_this_poll = 0;
  uint64_t poll_start_ns = 0;  // CLOCK_MONOTONIC, the clock of the events
  uint64_t keeping_up_ns = 30'000'000;
};

SocketCapture::SocketCapture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SocketCapture::~SocketCapture() = default;

absl::StatusOr<std::unique_ptr<SocketCapture>> SocketCapture::Create(const SocketCaptureOptions& o) {
  if (o.capture_bytes == 0 || o.capture_bytes > SONDE_PAYLOAD_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture size must be 1..", SONDE_PAYLOAD_MAX, " bytes, got ", o.capture_bytes));
  }
  if (!IsPowerOfTwo(o.ringbuf_bytes) || o.ringbuf_bytes < static_cast<uint32_t>(getpagesize())) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring buffer size must be a power of two >= page size, got ", o.ringbuf_bytes));
  }
  auto skel_or = SocketTraceSkeleton::Open();
  if (!skel_or.ok()) return skel_or.status();
  auto impl = std::make_unique<Impl>(std::move(*skel_or));
  socket_trace* s = impl->skel.get();

  s->rodata->capture_bytes = o.capture_bytes;
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return absl::InternalError("cannot determine the number of CPUs");
  bpf_map__set_max_entries(s->maps.scratch, static_cast<uint32_t>(ncpus));
  bpf_map__set_max_entries(s->maps.rings, static_cast<uint32_t>(ncpus));
  const uint64_t ring_bytes = PerCpuRingBytes(o.ringbuf_bytes, static_cast<uint32_t>(ncpus));
  s->rodata->wakeup_threshold_bytes = ring_bytes * std::min<uint32_t>(o.wakeup_fill_percent, 100) / 100;
  s->rodata->tls_enabled = o.tls;
  const tls::TlsPrograms tls_programs{s->progs.tls_read_enter,    s->progs.tls_read_ex_enter,
                                      s->progs.tls_write_enter,   s->progs.tls_write_ex_enter,
                                      s->progs.tls_exit_probe,    s->progs.tls_exit_site};
  for (bpf_program* p : {tls_programs.read_enter, tls_programs.read_ex_enter, tls_programs.write_enter,
                         tls_programs.write_ex_enter, tls_programs.exit, tls_programs.exit_site}) {
    if (!o.tls) bpf_program__set_autoload(p, false);
    // A uprobe_multi link takes only programs loaded for it (agent/bpf/uprobe_multi.h).
    if (o.tls && o.tls_attach.uprobe_multi)
      bpf_program__set_expected_attach_type(p, static_cast<bpf_attach_type>(bpf::kBpfTraceUprobeMulti));
  }

  // close() at entry: its own syscall tracepoint where the kernel has them
  // (no program at the entry of any other syscall), else a BTF sys_enter
  // program that runs for every syscall.
  std::error_code ec;
  const bool close_tracepoint =
      std::filesystem::exists("/sys/kernel/tracing/events/syscalls/sys_enter_close", ec) ||
      std::filesystem::exists("/sys/kernel/debug/tracing/events/syscalls/sys_enter_close", ec);
  bpf_program__set_autoload(s->progs.on_sys_enter_close, close_tracepoint);
  bpf_program__set_autoload(s->progs.on_sys_enter_any, !close_tracepoint);
  if (!close_tracepoint) {
    spdlog::info("no syscalls:sys_enter_close tracepoint: close() is caught by a BTF sys_enter program "
                 "(costs ~10-25 ns on every syscall)");
  }

  if (auto st = impl->skel.Load(); !st.ok()) {
    // The uprobe programs use BTF helpers some kernels allow only in tracing
    // programs: socket capture must not depend on them.
    if (o.tls) {
      spdlog::warn("TLS programs did not load ({}): TLS capture off, socket capture without it",
                   std::string(st.message()));
      SocketCaptureOptions without_tls = o;
      without_tls.tls = false;
      return Create(without_tls);
    }
    return st;
  }

  // The rings exist before any program can run: a CPU without one loses its events.
  // Ordered by exit time; a record too short for it (malformed) goes first and is counted.
  auto rings = bpf::RingSet::Create(static_cast<size_t>(ncpus), ring_bytes, offsetof(sonde_event_header, ts_exit_ns),
                                    &Impl::OnRecord, impl.get());
  if (!rings.ok()) return absl::InternalError(absl::StrCat("creating the ring buffers failed: ", rings.status().message()));
  impl->rings = std::move(*rings);
  for (uint32_t cpu = 0; cpu < static_cast<uint32_t>(ncpus); ++cpu) {
    const int ring_fd = impl->rings->ring_fd(cpu);
    if (bpf_map_update_elem(bpf_map__fd(s->maps.rings), &cpu, &ring_fd, BPF_ANY) != 0) {
      return absl::InternalError(absl::StrCat("installing the ring buffer of CPU ", cpu, ": ", std::strerror(errno)));
    }
  }

  // Filters before attach, so the agent never sees its own traffic.
  sonde_filter_config cfg{};
  cfg.agent_tgid = static_cast<uint32_t>(getpid());
  const auto& f = o.filter;
  if (!f.include_pids.empty()) cfg.mode |= SONDE_FILTER_PIDS_INCLUDE_ONLY;
  if (!f.include_ports.empty()) cfg.mode |= SONDE_FILTER_PORTS_INCLUDE_ONLY;
  if (!f.include_cgroups.empty()) cfg.mode |= SONDE_FILTER_CGROUPS_INCLUDE_ONLY;
  if (!f.include_pids.empty() || !f.exclude_pids.empty()) cfg.mode |= SONDE_FILTER_HAS_PID_ENTRIES;
  if (!f.include_cgroups.empty() || !f.exclude_cgroups.empty()) cfg.mode |= SONDE_FILTER_HAS_CGROUP_ENTRIES;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(s->maps.filter_config), &zero, &cfg, BPF_ANY) != 0) {
    return absl::InternalError(absl::StrCat("setting filter config failed: ", std::strerror(errno)));
  }
  const int pid_fd = bpf_map__fd(s->maps.pid_filter);
  const int port_fd = bpf_map__fd(s->maps.port_filter);
  const int cg_fd = bpf_map__fd(s->maps.cgroup_filter);
  for (uint32_t p : f.include_pids)
    if (auto st = PutFilter(pid_fd, p, SONDE_FILTER_INCLUDE, "pid"); !st.ok()) return st;
  for (uint32_t p : f.exclude_pids)
    if (auto st = PutFilter(pid_fd, p, SONDE_FILTER_EXCLUDE, "pid"); !st.ok()) return st;
  for (uint16_t p : f.include_ports)
    if (auto st = PutFilter(port_fd, p, SONDE_FILTER_INCLUDE, "port"); !st.ok()) return st;
  for (uint16_t p : f.exclude_ports)
    if (auto st = PutFilter(port_fd, p, SONDE_FILTER_EXCLUDE, "port"); !st.ok()) return st;
  for (uint64_t c : f.include_cgroups)
    if (auto st = PutFilter(cg_fd, c, SONDE_FILTER_INCLUDE, "cgroup"); !st.ok()) return st;
  for (uint64_t c : f.exclude_cgroups)
    if (auto st = PutFilter(cg_fd, c, SONDE_FILTER_EXCLUDE, "cgroup"); !st.ok()) return st;

  if (auto st = impl->skel.Attach(); !st.ok()) return st;  // the TLS uprobes have no target: left alone

  spdlog::info("socket capture attached: payload prefix {} B, {} ring buffers (one per CPU) of {} KiB, wake-up at "
               "{}% fill",
               o.capture_bytes, ncpus, ring_bytes >> 10, o.wakeup_fill_percent);
  if (o.tls) {
    tls::TlsAttachOptions attach = o.tls_attach;
    attach.self_pid = static_cast<uint32_t>(getpid());
    attach.only_pids = o.filter.include_pids;  // nobody else pays for the traps
    impl->tls = tls::TlsAttacher::Start(tls_programs, std::move(attach));
    const auto tc = impl->tls->counters();
    spdlog::info("TLS capture on: {} OpenSSL file(s) probed among {} examined in {} processes{}", tc.files_probed,
                 tc.files_examined, tc.processes_scanned,
                 tc.attach_failures != 0 ? " (some attaches failed, see above)" : "");
  }
  return std::unique_ptr<SocketCapture>(new SocketCapture(std::move(impl)));
}

absl::Status SocketCapture::Poll(int timeout_ms, const EventCallback& on_event) {
  impl_->callback = &on_event;
  impl_->drained_this_poll = 0;
  impl_->keeping_up_ns = static_cast<uint64_t>(std::max(timeout_ms, 1)) * 1'500'000;
  // Records are submitted without wake-ups, so epoll usually times out: the
  // unconditional consume afterwards is the periodic drain.
  int n = impl_->rings->Wait(timeout_ms);
  impl_->poll_start_ns = core::MonotonicNowNs();
  if (n >= 0) n = impl_->rings->Consume();
  impl_->callback = nullptr;
  if (n < 0 && n != -EINTR) {
    return absl::InternalError(absl::StrCat("ring buffer poll failed: ", std::strerror(-n)));
  }
  return absl::OkStatus();
}

double SocketCapture::RingFillFraction() const {
  return impl_->rings->MaxFillFraction();
}

SourceCounters SocketCapture::counters() const {
  SourceCounters c = impl_->counters;
  c.kernel_lost = ReadKernelCounters().total_drops();
  return c;
}

KernelCounters SocketCapture::ReadKernelCounters() const {
  KernelCounters out;
  const int ncpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus > 0 ? ncpus : 1));
  auto sum_map = [&](bpf_map* map, uint32_t count, uint64_t* dst) {
    for (uint32_t i = 0; i < count; ++i) {
      if (bpf_map_lookup_elem(bpf_map__fd(map), &i, per_cpu.data()) != 0) continue;
      for (uint64_t v : per_cpu) dst[i] += v;
    }
  };
  sum_map(impl_->skel->maps.drops, SONDE_DROP_REASON_COUNT, out.drops);
  sum_map(impl_->skel->maps.stats, SONDE_STAT_COUNT, out.stats);
  return out;
}

std::vector<ProgramStats> SocketCapture::ReadProgramStats() const {
  std::vector<ProgramStats> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, impl_->skel->obj) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) continue;
    out.push_back({bpf_program__name(prog), info.run_cnt, info.run_time_ns});
  }
  return out;
}

absl::Status SocketCapture::ExcludePort(uint16_t port) {
  if (auto st = PutFilter(bpf_map__fd(impl_->skel->maps.port_filter), port, SONDE_FILTER_EXCLUDE, "port");
      !st.ok())
    return st;
  // Per-socket filter decisions are cached in the kernel: a new generation
  // makes every socket decide again on its next call.
  return UpdateFilterConfig([](sonde_filter_config& cfg) { ++cfg.generation; });
}

absl::Status SocketCapture::UpdateFilterConfig(const std::function<void(sonde_filter_config&)>& change) {
  const uint32_t zero = 0;
  sonde_filter_config cfg{};
  const int cfg_fd = bpf_map__fd(impl_->skel->maps.filter_config);
  if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg) != 0) {
    return absl::InternalError(absl::StrCat("reading filter config failed: ", std::strerror(errno)));
  }
  change(cfg);
  if (bpf_map_update_elem(cfg_fd, &zero, &cfg, BPF_ANY) != 0) {
    return absl::InternalError(absl::StrCat("updating filter config failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void SocketCapture::IgnoreSocket(uint64_t sock_id) {
  const int fd = bpf_map__fd(impl_->skel->maps.sock_states);
  sonde_sock_state state{};
  // Missing (closed meanwhile or evicted): nothing to ignore any more.
  if (bpf_map_lookup_elem(fd, &sock_id, &state) != 0) return;
  // Given up on while still ciphertext (the handshake), but the kernel has
  // since seen an SSL call on it: its plaintext is coming, keep it.
  if ((state.flags & SONDE_SOCK_TLS) && !impl_->tls_transitions.SeenPlaintext(sock_id)) return;
  state.flags |= SONDE_SOCK_IGNORED;
  if (bpf_map_update_elem(fd, &sock_id, &state, BPF_EXIST) == 0) ++impl_->counters.ignored_sockets;
}

std::optional<tls::TlsAttachCounters> SocketCapture::tls_counters() const {
  if (!impl_->tls) return std::nullopt;
  return impl_->tls->counters();
}

void SocketCapture::RescanTls() {
  if (impl_->tls) impl_->tls->Scan(/*all_processes=*/true);
}

absl::Status SocketCapture::ExcludePid(uint32_t pid) {
  if (auto st = PutFilter(bpf_map__fd(impl_->skel->maps.pid_filter), pid, SONDE_FILTER_EXCLUDE, "pid");
      !st.ok())
    return st;
  // Make sure the kernel side consults the pid map from now on.
  return UpdateFilterConfig([](sonde_filter_config& cfg) { cfg.mode |= SONDE_FILTER_HAS_PID_ENTRIES; });
}

}  // namespace sonde::capture
