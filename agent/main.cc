// sonde-agent: the node agent.
//   sonde-agent probe                      kernel feature report
//   sonde-agent capture --json|--record F  raw socket events
//   sonde-agent run                        the full pipeline (spans, metrics, export)
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>
#include <spdlog/spdlog.h>

#include "agent/bpf/feature_probe.h"
#include "agent/bpf/libbpf_logging.h"
#include "agent/capture/event_json.h"
#include "agent/capture/drain_priority.h"
#include "agent/capture/recording.h"
#include "agent/capture/socket_capture.h"
#include "agent/core/clock.h"
#include "agent/core/config.h"
#include "agent/core/otel_resource.h"
#include "agent/core/config_env.h"
#include "agent/core/logging.h"
#include "agent/export/export_component.h"
#include "agent/metrics/prometheus_text.h"
#include "agent/otlp/cli.h"
#include "agent/packet/network_component.h"
#include "agent/pipeline/otlp_component.h"
#include "agent/conn/socket_probe.h"
#include "agent/pipeline/pipeline.h"
#include "agent/profile/profile_component.h"
#include "agent/run_config.h"

// jemalloc (the agent's allocator): a background thread gives freed pages
// back to the kernel after 2 s. By default they are purged only when the
// allocator is next busy, so after a burst of connections closed an idle
// agent kept its peak RSS (issue #22; bench/conn_scale: RSS after close).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0";
}

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// The agent runs in the background while its drain keeps up and moves
// ahead of the workload when it falls behind (agent/capture/drain_priority.h).
// nullptr when the priority is fixed or cannot be regained.
std::unique_ptr<sonde::capture::DrainPriority> StartDrainPriority(const sonde::core::CaptureConfig& c,
                                                                  const sonde::capture::SocketCapture& capture) {
  sonde::capture::DrainPriorityOptions o;
  o.background_nice = c.background_nice;
  o.background_idle = c.background_idle;
  o.catch_up_nice = c.drain_nice;
  // Both callers declare the priority after the capture: it stops reading first.
  return sonde::capture::DrainPriority::Start(o, [&capture] { return capture.RingFillFraction(); });
}

void AddDrainPriorityMetrics(sonde::pipeline::Agent& agent, const sonde::capture::DrainPriority& priority) {
  agent.metrics_server().AddCollector([&priority](std::string& out) {
    using sonde::metrics::prometheus::AppendCounter;
    using sonde::metrics::prometheus::AppendGauge;
    AppendGauge(out, "sonde_agent_nice", "Nice value of the agent's threads now (background while the drain keeps up).",
                priority.nice());
    AppendCounter(out, "sonde_agent_drain_catch_ups_total",
                  "Times the drain fell behind and the agent moved ahead of the workload (capture.drain_nice).",
                  priority.catch_ups());
  });
}

sonde::capture::SocketCaptureOptions CaptureOptionsFrom(const sonde::core::AgentConfig& c) {
  sonde::capture::SocketCaptureOptions o;
  o.capture_bytes = c.capture.payload_bytes;
  o.ringbuf_bytes = c.capture.ringbuf_mb << 20;
  o.wakeup_fill_percent = c.capture.wakeup_fill_percent;
  o.filter.include_pids = c.capture.include_pids;
  o.filter.exclude_pids = c.capture.exclude_pids;
  o.filter.include_ports = c.capture.include_ports;
  o.filter.exclude_ports = c.capture.exclude_ports;
  o.filter.include_cgroups = c.capture.include_cgroups;
  o.filter.exclude_cgroups = c.capture.exclude_cgroups;
  o.tls = c.capture.tls;
  return o;
}

// Whether HTTPS plaintext is captured, how, or why not: one start-up line and
// sonde_agent_tls_capture_enabled on /metrics (docs/troubleshooting.md).
struct TlsCaptureState {
  std::string attach = "none";  // uprobe_pmu, uprobe_multi, none
  std::string reason;           // when off: disabled, permission_denied, no_uprobes, programs_not_loaded
};

// Probe, then load the socket capture; nullptr (after logging why) when impossible.
std::unique_ptr<sonde::capture::SocketCapture> StartSocketCapture(const sonde::core::AgentConfig& c,
                                                                  TlsCaptureState* tls_state = nullptr) {
  const auto features = sonde::bpf::ProbeKernelFeatures();
  sonde::bpf::LogKernelFeatures(features);
  if (!features.CanCaptureSockets()) {
    spdlog::error("socket capture impossible on this kernel (see the missing features above)");
    return nullptr;
  }
  auto options = CaptureOptionsFrom(c);
  TlsCaptureState tls;
  if (!options.tls) {
    tls.reason = "disabled";
  } else if (!features.uprobes && features.uprobe_pmu_denied) {
    spdlog::warn("TLS capture off: no right to place uprobes (this kernel wants CAP_SYS_ADMIN for the uprobe PMU "
                 "and has no uprobe_multi links, kernel < 6.6): HTTPS stays invisible; grant CAP_SYS_ADMIN "
                 "(docs/deploy.md, Least privilege) or upgrade the kernel");
    tls.reason = "permission_denied";
    options.tls = false;
  } else if (!features.uprobes) {
    spdlog::warn("TLS capture off: uprobes unavailable (see the feature report above; HTTPS stays invisible)");
    tls.reason = "no_uprobes";
    options.tls = false;
  }
  // The uprobe PMU wants CAP_SYS_ADMIN on kernels with the CVE-2025-38466 fix: uprobe_multi links do not.
  options.tls_attach.uprobe_multi = !features.uprobe_pmu && features.uprobe_multi;
  auto capture = sonde::capture::SocketCapture::Create(options);
  if (!capture.ok()) {
    spdlog::error("socket capture failed to start: {}", capture.status().ToString());
    return nullptr;
  }
  if ((*capture)->tls_counters()) {
    tls.attach = options.tls_attach.uprobe_multi ? "uprobe_multi" : "uprobe_pmu";
  } else if (tls.reason.empty()) {
    tls.reason = "programs_not_loaded";  // logged by SocketCapture::Create
  }
  if (tls_state != nullptr) *tls_state = tls;
  return std::move(*capture);
}

int RunProbe() {
  const auto f = sonde::bpf::ProbeKernelFeatures();
  nlohmann::json j = {{"btf", f.btf},
                      {"tracefs", f.tracefs},
                      {"tracefs_path", f.tracefs_path},
                      {"tracefs_mounted_by_sonde", f.tracefs_mounted_by_us},
                      {"ringbuf", f.ringbuf},
                      {"syscall_tracepoints", f.syscall_tracepoints},
                      {"sock_tracepoints", f.sock_tracepoints},
                      {"tcp_tracepoints", f.tcp_tracepoints},
                      {"perf_event", f.perf_event},
                      {"uprobes", f.uprobes},
                      {"uprobe_pmu", f.uprobe_pmu},
                      {"uprobe_multi", f.uprobe_multi},
                      {"kprobes", f.kprobes},
                      {"socket_capture_possible", f.CanCaptureSockets()},
                      {"missing_capabilities", f.missing_capabilities},
                      {"problems", f.problems}};
  std::cout << j.dump(2) << std::endl;
  return f.CanCaptureSockets() ? 0 : 1;
}

struct CaptureCommand {
  bool json = false;
  std::string record_path;
  double duration_s = 0;
  uint64_t max_events = 0;
  std::string ready_file;  // touched once the programs are attached (for tests/scripts)
  std::string stats_file;  // final counters as JSON (for tests/scripts)
};

int RunCapture(const sonde::core::AgentConfig& config, const CaptureCommand& cmd) {
  if (!cmd.json && cmd.record_path.empty()) {
    spdlog::error("capture: give --json and/or --record FILE");
    return 2;
  }
  auto capture = StartSocketCapture(config);
  if (!capture) return 1;
  const auto priority = StartDrainPriority(config.capture, *capture);  // reads the fill while it lives

  sonde::core::MonotonicToRealtime clock;
  std::unique_ptr<sonde::capture::RecordingWriter> writer;
  if (!cmd.record_path.empty()) {
    auto w = sonde::capture::RecordingWriter::Create(
        cmd.record_path, {.monotonic_to_realtime_ns = static_cast<uint64_t>(clock.offset_ns()),
                          .capture_bytes = config.capture.payload_bytes});
    if (!w.ok()) {
      spdlog::error("{}", w.status().ToString());
      return 1;
    }
    writer = std::move(*w);
  }
  if (!cmd.ready_file.empty()) {
    if (std::FILE* f = std::fopen(cmd.ready_file.c_str(), "w")) std::fclose(f);
  }

  uint64_t events = 0;
  absl::Status write_status;
  const bool has_deadline = cmd.duration_s > 0;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(cmd.duration_s));
  auto on_event = [&](sonde::capture::RawEvent ev) {
    ++events;
    if (writer && write_status.ok()) write_status = writer->Write(ev);
    if (cmd.json) {
      std::cout << sonde::capture::EventToJson(ev, static_cast<uint64_t>(clock.offset_ns()))
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << '\n';
    }
  };
  while (!g_stop.load()) {
    if (auto st = capture->Poll(static_cast<int>(config.capture.drain_interval_ms), on_event); !st.ok()) {
      spdlog::error("{}", st.ToString());
      return 1;
    }
    if (!write_status.ok()) {
      spdlog::error("recording failed: {}", write_status.ToString());
      return 1;
    }
    if (cmd.max_events != 0 && events >= cmd.max_events) break;
    if (has_deadline && std::chrono::steady_clock::now() >= deadline) break;
  }
  // Final drain so nothing already in the ring buffer is lost on exit.
  (void)capture->Poll(0, on_event);
  std::cout.flush();
  if (writer) (void)writer->Flush();
  const auto k = capture->ReadKernelCounters();
  if (!cmd.stats_file.empty()) {
    const auto src = capture->counters();
    nlohmann::json stats = {{"events", events},
                            {"malformed", src.malformed},
                            {"kernel_drops", k.total_drops()},
                            {"ringbuf_full", k.drops[SONDE_DROP_RINGBUF_FULL]},
                            {"stash_full", k.drops[SONDE_DROP_STASH_FULL]},
                            {"payload_read_failed", k.drops[SONDE_DROP_PAYLOAD_READ]},
                            {"kernel_events", k.stats[SONDE_STAT_EVENTS]},
                            {"forced_wakeups", k.stats[SONDE_STAT_WAKEUPS]},
                            {"sendfile_calls", k.stats[SONDE_STAT_SENDFILE_CALLS]},
                            {"mmsg_calls", k.stats[SONDE_STAT_MMSG_CALLS]},
                            {"filtered", k.stats[SONDE_STAT_FILTERED]},
                            {"tls_plaintext", k.stats[SONDE_STAT_TLS_PLAINTEXT]},
                            {"tls_ciphertext_skipped", k.stats[SONDE_STAT_TLS_CIPHERTEXT]},
                            {"tls_no_socket", k.stats[SONDE_STAT_TLS_NO_SOCKET]}};
    if (std::FILE* f = std::fopen(cmd.stats_file.c_str(), "w")) {
      const std::string text = stats.dump(2);
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
  }
  spdlog::info("capture done: {} events, kernel drops {} (ringbuf_full={} stash_full={} payload_read={}), "
               "forced wake-ups {}",
               events, k.total_drops(), k.drops[SONDE_DROP_RINGBUF_FULL], k.drops[SONDE_DROP_STASH_FULL],
               k.drops[SONDE_DROP_PAYLOAD_READ], k.stats[SONDE_STAT_WAKEUPS]);
  return 0;
}

// TLS capture on /metrics: the attacher's files/probes/failures and the
// kernel's plaintext and ciphertext counts (docs/tls.md).
void AddTlsMetrics(sonde::pipeline::Agent& agent, const sonde::capture::SocketCapture& capture) {
  agent.metrics_server().AddCollector([&capture](std::string& out) {
    using sonde::metrics::prometheus::AppendCounter;
    const auto a = capture.tls_counters().value_or(sonde::tls::TlsAttachCounters{});
    const auto k = capture.ReadKernelCounters();
    AppendCounter(out, "sonde_agent_tls_files_probed_total",
                  "Files with OpenSSL (libssl or linked in) whose SSL_read/SSL_write are probed.", a.files_probed);
    AppendCounter(out, "sonde_agent_tls_probes_attached_total", "TLS uprobes and uretprobes attached.",
                  a.probes_attached);
    AppendCounter(out, "sonde_agent_tls_attach_failures_total", "Files with OpenSSL where attaching failed.",
                  a.attach_failures);
    AppendCounter(out, "sonde_agent_tls_functions_emulated_sites_total",
                  "SSL functions probed on emulated instructions (no single-step trap, docs/tls.md).",
                  a.functions_on_emulated_sites);
    AppendCounter(out, "sonde_agent_tls_files_examined_total", "Distinct executable files looked up for OpenSSL.",
                  a.files_examined);
    AppendCounter(out, "sonde_agent_tls_plaintext_events_total", "SSL_read/SSL_write calls captured as plaintext.",
                  k.stats[SONDE_STAT_TLS_PLAINTEXT]);
    AppendCounter(out, "sonde_agent_tls_ciphertext_skipped_total",
                  "Socket calls on TLS connections whose ciphertext was not copied.", k.stats[SONDE_STAT_TLS_CIPHERTEXT]);
    AppendCounter(out, "sonde_agent_tls_no_socket_total",
                  "SSL calls whose socket could not be found (library without socket I/O, e.g. memory BIOs).",
                  k.stats[SONDE_STAT_TLS_NO_SOCKET]);
  });
}

// sonde_agent_tls_capture_enabled: whether HTTPS plaintext is captured; its
// labels say how the uprobes are placed, or why capture is off.
void AddTlsState(sonde::pipeline::Agent& agent, const TlsCaptureState& state) {
  agent.metrics_server().AddCollector([state](std::string& out) {
    sonde::metrics::prometheus::AppendMetricHeader(
        out, "sonde_agent_tls_capture_enabled", "gauge",
        "1 when TLS plaintext (OpenSSL) is captured; attach: uprobe_pmu, uprobe_multi or none; reason when 0: "
        "disabled, permission_denied, no_uprobes, programs_not_loaded.");
    sonde::metrics::prometheus::AppendSample(out, "sonde_agent_tls_capture_enabled",
                                             {{"attach", state.attach}, {"reason", state.reason}},
                                             uint64_t{state.reason.empty() ? 1u : 0u});
  });
}

// sonde_build_info: a constant 1 whose labels say which agent this is (the
// Prometheus *_build_info convention; dashboards join on it).
void AddBuildInfo(sonde::pipeline::Agent& agent, const std::string& node_name) {
  agent.metrics_server().AddCollector([node_name](std::string& out) {
    sonde::metrics::prometheus::AppendMetricHeader(out, "sonde_build_info", "gauge",
                                                   "Always 1; labels: the agent's version and node name.");
    sonde::metrics::prometheus::AppendSample(out, "sonde_build_info",
                                             {{"version", SONDE_VERSION}, {"node_name", node_name}}, uint64_t{1});
  });
}

struct RunCommand {
  std::string replay_path;  // run the pipeline over a recording instead of the live kernel
  bool no_json = false;     // do not print spans as JSON lines
  std::string json_path;    // print spans to this file instead of stdout
  std::string ready_file;
  bool otlp_enabled = true;
  sonde::packet::NetworkConfig network;  // TCP health + packet capture (docs/tcp-metrics.md)
  sonde::profile::ProfileFlags profile;  // continuous CPU profiler (docs/profiling.md)
  sonde::trace::ServiceNamingOptions services;  // service naming rules (docs/configuration.md)
};

// `sonde-agent run`: the whole agent. Components (OTLP receivers, exporter,
// TCP health, packet capture, profiler) plug into the pipeline's Agent below.
int RunAgent(const sonde::core::AgentConfig& config, const RunCommand& cmd,
             sonde::otlp::OtlpFlags& otlp_flags) {
  sonde::pipeline::PipelineOptions options;
  options.metrics_listen = config.metrics_listen;
  options.sampler.spans_per_second = config.spans.rate_limit;
  options.sampler.min_spans_per_service = config.spans.min_per_service;
  options.sampler.slow_ns = static_cast<uint64_t>(config.spans.slow_ms) * 1'000'000;
  options.sampler.honour_parent_flag = config.spans.honour_parent_flag;
  options.joiner.enabled = config.spans.join_exchanges;
  options.workers = config.capture.workers;
  for (const auto& h : config.spans.redact_headers) options.redact_headers.push_back(h);
  for (const auto& q : config.spans.redact_query_params) options.redact_query_params.push_back(q);
  options.print_json = !cmd.no_json && config.server_address.empty();
  sonde::capture::File json_file;
  if (options.print_json && !cmd.json_path.empty()) {
    json_file.reset(std::fopen(cmd.json_path.c_str(), "w"));
    if (!json_file) {
      spdlog::error("cannot open {} for spans", cmd.json_path);
      return 1;
    }
    options.json_out = json_file.get();
  }

  std::unique_ptr<sonde::capture::EventSource> source;
  sonde::capture::SocketCapture* live = nullptr;
  std::unique_ptr<sonde::capture::DrainPriority> priority;  // after the source: outlives no poll
  TlsCaptureState tls_state;
  if (!cmd.replay_path.empty()) {
    auto rec = sonde::capture::RecordedFileSource::Open(cmd.replay_path);
    if (!rec.ok()) {
      spdlog::error("{}", std::string(rec.status().message()));
      return 1;
    }
    options.clock_offset_ns = (*rec)->header().monotonic_to_realtime_ns;
    options.event_time = true;
    source = std::move(*rec);
  } else {
    auto capture = StartSocketCapture(config, &tls_state);
    if (!capture) return 1;
    live = capture.get();
    priority = StartDrainPriority(config.capture, *live);
    source = std::move(capture);
  }
  options.poll_timeout_ms = static_cast<int>(config.capture.drain_interval_ms);
  // Connection lifecycle (agent/conn/tracker.h): the memory ceiling, and for
  // live capture the periodic check of quiet connections against /proc.
  options.tracker.memory_ceiling_bytes = static_cast<uint64_t>(config.memory_limit_mb) << 20;
  sonde::conn::ProcSocketProbe socket_probe;
  if (live != nullptr) {
    options.tracker.socket_probe = &socket_probe;
    options.tracker.thread_names_proc_root = "/proc";
  }

  // Service names, resolved once per process from /proc (not for recordings,
  // whose pids are not this host's processes).
  sonde::trace::ServiceNamingOptions naming = cmd.services;
  naming.read_proc = cmd.replay_path.empty();
  auto namer = sonde::trace::ServiceNamer::Create(std::move(naming));
  if (!namer.ok()) {
    spdlog::error("{}", std::string(namer.status().message()));
    return 2;
  }
  options.service_namer = std::move(*namer);
  // OTEL_RESOURCE_ATTRIBUTES describes this node: added to every span shipped
  // (core/otel_resource.h says why service.name is not applied).
  auto otel = sonde::core::OtelResourceFromEnv(std::getenv("OTEL_RESOURCE_ATTRIBUTES"), std::getenv("OTEL_SERVICE_NAME"));
  if (!otel.ok()) {
    spdlog::error("{}", std::string(otel.status().message()));
    return 2;
  }
  if (!otel->ignored_service_name.empty()) {
    spdlog::info("service.name '{}' (OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES) not applied: the agent names each "
                 "process it observes (services.rules in the config)", otel->ignored_service_name);
  }
  options.resource_attributes = std::move(otel->attributes);
  sonde::pipeline::Agent agent(options);
  if (!config.metrics_tls_cert.empty()) {
    agent.metrics_server().SetTls({config.metrics_tls_cert, config.metrics_tls_key, config.metrics_tls_client_ca});
  }
  // --- components plug in here (each: agent.AddComponent / agent.AddSink) ---
  auto exclude_port = [live](uint16_t port) {
    if (live == nullptr) return;
    if (auto st = live->ExcludePort(port); !st.ok()) spdlog::warn("{}", std::string(st.message()));
  };
  sonde::pipeline::OtlpComponent* otlp_component = nullptr;
  if (cmd.otlp_enabled) {
    if (auto st = sonde::otlp::ResolveOtlpFlags(otlp_flags); !st.ok()) {
      spdlog::error("OTLP flags: {}", std::string(st.message()));
      return 2;
    }
    // Past the agent's resident ceiling OTLP work is shed too (agent/otlp/memory_limiter.h).
    otlp_flags.config.ingest.memory.rss_ceiling_bytes = static_cast<uint64_t>(config.memory_limit_mb) << 20;
    auto otlp = std::make_unique<sonde::pipeline::OtlpComponent>(otlp_flags.config, exclude_port);
    otlp_component = otlp.get();
    agent.AddComponent(std::move(otlp));
  }
  std::shared_ptr<sonde::exporter::ServerExporter> exporter;
  if (!config.server_address.empty()) {  // spans + RED windows -> sonde-server (agent/export)
    const auto colon = config.server_address.rfind(':');
    if (colon != std::string::npos) exclude_port(static_cast<uint16_t>(std::atoi(config.server_address.c_str() + colon + 1)));
    std::string token = config.server_token;
    if (!config.server_token_file.empty()) {  // a file keeps the secret out of ps
      std::ifstream in(config.server_token_file);
      std::getline(in, token);
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
      if (token.empty()) {
        spdlog::error("no token in {}", config.server_token_file);
        return 2;
      }
    }
    exporter = sonde::exporter::AttachExporter(
        agent, {config.server_address, token, config.server_tls_ca, config.server_tls_cert, config.server_tls_key,
                config.node_name, SONDE_VERSION, config.server_spool_dir,
                static_cast<uint64_t>(config.server_spool_max_mb) << 20});
  }
  if (otlp_component != nullptr && exporter) {
    // The export queue holds the converted OTLP spans too: its bytes count
    // against the OTLP memory limit (agent/otlp/memory_limiter.h).
    otlp_component->receiver().memory_limiter().AddGauge([exporter] { return exporter->queued_bytes(); });
  }
  if (cmd.network.tcp_health || cmd.network.packet_capture) {  // TCP health, packet metrics, network spans
    sonde::packet::NetworkConfig network = cmd.network;
    network.include_pids = config.capture.include_pids;
    network.exclude_pids = config.capture.exclude_pids;
    agent.AddComponent(std::make_unique<sonde::packet::NetworkComponent>(std::move(network)));
  }
  if (cmd.profile.enabled) sonde::profile::AttachProfiler(agent, cmd.profile);  // docs/profiling.md
  if (live != nullptr && live->tls_counters()) AddTlsMetrics(agent, *live);  // docs/tls.md
  if (live != nullptr) AddTlsState(agent, tls_state);
  if (priority != nullptr) AddDrainPriorityMetrics(agent, *priority);
  AddBuildInfo(agent, config.node_name);
  // --- end of components ---

  if (auto st = agent.Start(); !st.ok()) {
    spdlog::error("agent start failed: {}", std::string(st.message()));
    return 1;
  }
  if (!cmd.ready_file.empty()) {
    if (std::FILE* f = std::fopen(cmd.ready_file.c_str(), "w")) std::fclose(f);
  }
  spdlog::info("sonde-agent running ({}), metrics on {}", cmd.replay_path.empty() ? "live" : cmd.replay_path,
               config.metrics_listen.empty() ? "off" : config.metrics_listen);
  const absl::Status st = agent.Run(*source, g_stop);
  agent.Stop();
  if (!st.ok() && !absl::IsOutOfRange(st)) {
    spdlog::error("agent stopped: {}", std::string(st.message()));
    return 1;
  }
  return 0;
}

// Everything `run` reads from configuration: the YAML file (if any) with the
// SONDE_* environment laid over it (agent/core/config_env.h), every section
// loaded by its owner. Errors name the key (and the variable it came from).
struct LoadedConfig {
  sonde::core::AgentConfig core;
  sonde::packet::NetworkConfig network;
  sonde::otlp::OtlpFlags otlp;
  bool otlp_enabled = true;
  sonde::profile::ProfileFlags profile;
  sonde::trace::ServiceNamingOptions services;
  std::vector<sonde::core::EnvOverride> env;
};

absl::Status LoadConfiguration(const std::string& path, LoadedConfig& out) {
  YAML::Node root;
  const std::string where = path.empty() ? "environment" : path;
  if (!path.empty()) {
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(path + ": " + e.what());
    }
  }
  auto env = sonde::core::ApplyEnvironment(root, sonde::core::ProcessEnvironment());
  if (!env.ok()) return env.status();
  out.env = *env;
  absl::Status st = sonde::core::LoadConfigTree(root, where, out.core);
  if (st.ok()) st = sonde::packet::LoadNetworkYaml(root["network"], where, out.network);
  if (st.ok()) st = sonde::agent::LoadOtlpYaml(root["otlp"], where, out.otlp, out.otlp_enabled);
  if (st.ok()) st = sonde::agent::LoadProfileYaml(root["profile"], where, out.profile);
  if (st.ok()) st = sonde::agent::LoadServicesYaml(root["services"], where, out.services);
  if (st.ok()) st = sonde::trace::ServiceNamer::Create(out.services).status();  // rules' regexes
  if (st.ok()) st = sonde::core::ValidateConfig(out.core);
  if (st.ok()) return st;
  // Say which environment variable set the offending key.
  std::string message(st.message());
  for (const auto& o : out.env) {
    const std::string leaf = o.key.substr(o.key.rfind('.') + 1);
    if (message.find(o.key) != std::string::npos ||
        (message.find("'" + leaf + "'") != std::string::npos && o.key.find('.') != std::string::npos)) {
      message += " (set by " + o.variable + ")";
    }
  }
  return absl::InvalidArgumentError(message);
}

// `sonde-agent config check FILE`: loads FILE (with the SONDE_* environment)
// the way `run` would, without touching the kernel; 0 when valid.
int RunConfigCheck(const std::string& path) {
  LoadedConfig loaded;
  if (auto st = LoadConfiguration(path, loaded); !st.ok()) {
    std::cerr << "sonde-agent: " << st.message() << std::endl;
    return 2;
  }
  std::cout << path << ": ok";
  if (!loaded.env.empty()) {
    std::cout << " (environment:";
    for (const auto& o : loaded.env) std::cout << " " << o.variable << "=>" << o.key;
    std::cout << ")";
  }
  std::cout << std::endl;
  return 0;
}

// The node this agent reports as: node_name / SONDE_NODE_NAME / --node-name
// (the Kubernetes DaemonSet sets SONDE_NODE_NAME from spec.nodeName), else
// the host name.
std::string ResolveNodeName(const std::string& configured) {
  if (!configured.empty()) return configured;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) return host;
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sonde-agent: zero-code eBPF observability for API gateway nodes"};
  app.require_subcommand(1);
  sonde::core::AgentConfig config;
  std::string config_path;
  std::string log_level;
  bool verbose_bpf = false;
  app.add_option("-c,--config", config_path, "YAML configuration file")->check(CLI::ExistingFile);
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (default info)");
  app.add_flag("--verbose-bpf", verbose_bpf, "Show libbpf debug output");
  std::string node_name;
  app.add_option("--node-name", node_name, "Name this node reports as (default: SONDE_NODE_NAME, then the host name)");
  app.set_version_flag("--version", std::string("sonde-agent ") + SONDE_VERSION);

  std::string check_path;
  auto* config_cmd = app.add_subcommand("config", "Configuration tools");
  config_cmd->require_subcommand(1);
  auto* config_check = config_cmd->add_subcommand("check", "Validate a configuration file (and SONDE_* variables); 0: valid");
  config_check->add_option("file", check_path, "YAML configuration file")->required()->check(CLI::ExistingFile);

  auto* probe = app.add_subcommand("probe", "Report kernel features and exit (0: capture possible)");

  CaptureCommand capture_cmd;
  auto* capture = app.add_subcommand("capture", "Print or record raw socket events");
  capture->add_flag("--json", capture_cmd.json, "Print events as JSON lines on stdout");
  capture->add_option("--record", capture_cmd.record_path, "Write events to a recording file");
  capture->add_option("--duration", capture_cmd.duration_s, "Stop after this many seconds");
  capture->add_option("--max-events", capture_cmd.max_events, "Stop after this many events");
  capture->add_option("--ready-file", capture_cmd.ready_file, "Create this file once attached");
  capture->add_option("--stats-file", capture_cmd.stats_file, "Write final counters as JSON here");
  sonde::core::AddCaptureFlags(*capture, config);

  RunCommand run_cmd;
  auto* run = app.add_subcommand("run", "Run the agent: capture, spans, metrics, OTLP, export");
  run->add_option("--replay", run_cmd.replay_path, "Process a recording instead of the live kernel")
      ->check(CLI::ExistingFile);
  run->add_flag("--no-json", run_cmd.no_json, "Do not print spans as JSON lines");
  run->add_option("--json-out", run_cmd.json_path, "Write span JSON lines to this file (default stdout)");
  run->add_option("--ready-file", run_cmd.ready_file, "Create this file once the agent is running");
  run->add_option("--server", config.server_address, "sonde-server ingest address host:port");
  run->add_option("--server-token", config.server_token, "Token sent to sonde-server");
  run->add_option("--server-token-file", config.server_token_file, "Read the sonde-server token from this file");
  run->add_option("--server-ca", config.server_tls_ca, "PEM CA bundle: connect to sonde-server over TLS");
  run->add_option("--server-cert", config.server_tls_cert, "PEM client certificate for sonde-server");
  run->add_option("--server-key", config.server_tls_key, "PEM key of --server-cert");
  run->add_option("--server-spool-dir", config.server_spool_dir,
                  "Keep unacknowledged batches in this directory (survive a restart during a server outage)");
  run->add_option("--server-spool-max-mb", config.server_spool_max_mb, "Size bound of --server-spool-dir")
      ->capture_default_str();
  run->add_option("--metrics-listen", config.metrics_listen, "Prometheus /metrics address (empty: off)")
      ->capture_default_str();
  sonde::core::AddMetricsTlsFlags(*run, config);
  sonde::core::AddCaptureFlags(*run, config);
  sonde::core::AddSpanFlags(*run, config);
  run->add_flag("!--no-otlp", run_cmd.otlp_enabled, "Do not start the OTLP receivers");
  sonde::packet::AddNetworkFlags(*run, run_cmd.network);
  sonde::profile::AddProfileFlags(*run, run_cmd.profile);
  sonde::otlp::OtlpFlags run_otlp_flags;
  sonde::otlp::AddOtlpFlags(*run, run_otlp_flags);

  sonde::otlp::OtlpFlags otlp_flags;
  auto* otlp = sonde::otlp::AddOtlpSubcommand(app, otlp_flags);

  // The YAML file is applied before flags, so flags win: parse once to find
  // --config, load it, then parse again over the loaded values.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*config_check) return RunConfigCheck(check_path);
  {
    LoadedConfig loaded;
    if (auto st = LoadConfiguration(config_path, loaded); !st.ok()) {
      std::cerr << "sonde-agent: " << st.message() << std::endl;
      return 2;
    }
    config = loaded.core;
    run_cmd.network = loaded.network;
    run_otlp_flags = loaded.otlp;
    run_cmd.otlp_enabled = loaded.otlp_enabled;
    run_cmd.profile = loaded.profile;
    run_cmd.services = loaded.services;
    otlp_flags = loaded.otlp;
    try {
      app.parse(argc, argv);  // flags win over file and environment
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
  }
  if (!node_name.empty()) config.node_name = node_name;
  config.node_name = ResolveNodeName(config.node_name);
  if (!log_level.empty()) config.log_level = log_level;
  if (!sonde::core::IsLogLevel(config.log_level)) {
    std::cerr << "sonde-agent: log_level (--log-level) must be one of trace, debug, info, warn, error, critical, "
                 "off; got '" << config.log_level << "'" << std::endl;
    return 2;
  }
  sonde::core::SetupLogging(config.log_level);
  sonde::bpf::RouteLibbpfLogsToSpdlog(verbose_bpf);
  if (auto st = sonde::core::ValidateConfig(config); !st.ok()) {
    spdlog::error("invalid configuration: {}", std::string(st.message()));
    return 2;
  }
  InstallSignalHandlers();

  if (*probe) return RunProbe();
  if (*capture) return RunCapture(config, capture_cmd);
  if (*run) return RunAgent(config, run_cmd, run_otlp_flags);
  if (*otlp) return sonde::otlp::RunOtlpSubcommand(otlp_flags, g_stop);
  return 2;
}
