// sonde_ui_seed: sends a small, realistic data set to a running sonde-server
// through the real exporter (gRPC, zlib): one gateway trace per --traces with
// A, S and N spans (client -> nginx -> backend), RED and TCP windows and CPU
// stacks. One request header carries "<script>alert(1)</script>" so the UI's
// escaping can be checked. Prints the trace ids, one per line.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/export/server_exporter.h"

using namespace sonde;

namespace {
uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count());
}
template <size_t N>
void Fill(std::array<uint8_t, N>& a, std::mt19937_64& rng) {
  for (auto& b : a) b = static_cast<uint8_t>(rng());
}
std::string Hex(const trace::TraceId& id) {
  std::string s;
  char buf[3];
  for (auto b : id) { std::snprintf(buf, sizeof buf, "%02x", b); s += buf; }
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"seed sonde-server with synthetic gateway traces"};
  std::string target = "127.0.0.1:7070";
  int traces = 5;
  app.add_option("--server", target);
  app.add_option("--traces", traces);
  CLI11_PARSE(app, argc, argv);

  exporter::ExporterOptions o;
  o.target = target;
  o.identity.set_host_name("seed-host");
  o.identity.set_node_id("seed-node");
  exporter::ServerExporter ex(o);
  ex.Start();
  std::mt19937_64 rng(42);
  const uint64_t ms = 1'000'000;
  const uint64_t base = NowNs() - 60'000 * ms;
  for (int i = 0; i < traces; ++i) {
    const uint64_t t0 = base + static_cast<uint64_t>(i) * 5000 * ms;
    trace::TraceId tid;
    Fill(tid, rng);
    auto mk = [&](trace::SpanSource src, trace::SpanKind kind, const std::string& svc, uint32_t pid,
                  uint64_t start, uint64_t end) {
      trace::Span s;
      s.trace_id = tid;
      Fill(s.span_id, rng);
      s.source = src;
      s.kind = kind;
      s.service_name = svc;
      s.comm = svc;
      s.pid = pid;
      s.tid = pid + 1;
      s.start_unix_ns = start;
      s.end_unix_ns = end;
      s.protocol = protocols::L7Protocol::kHttp1;
      s.endpoint = "GET /api/items/{id}";
      s.name = s.endpoint;
      s.http_status = i % 4 == 3 ? 502 : 200;
      s.status = s.http_status >= 500 ? trace::StatusCode::kError : trace::StatusCode::kUnset;
      return s;
    };
    auto ingress = mk(trace::SpanSource::kSystem, trace::SpanKind::kServer, "nginx", 1000, t0, t0 + 40 * ms);
    ingress.client = {"127.0.0.1", 51000};
    ingress.server = {"127.0.0.1", 8080};
    ingress.request_headers = {{"host", "gateway.local"}, {"user-agent", "curl/8"},
                               {"x-evil", "<script>alert(1)</script>"},
                               {"traceparent", "00-" + Hex(tid) + "-0000000000000001-01"}};
    ingress.response_headers = {{"content-type", "application/json"}};
    ingress.attributes = {{"http.route", std::string("/api/items/{id}")}, {"tenant", std::string("acme")}};
    ingress.request_bytes = 180;
    ingress.response_bytes = 512;
    auto egress = mk(trace::SpanSource::kSystem, trace::SpanKind::kClient, "nginx", 1000, t0 + 2 * ms, t0 + 37 * ms);
    egress.parent_span_id = ingress.span_id;
    egress.parent_reason = trace::LinkReason::kThread;
    egress.client = {"127.0.0.1", 52000};
    egress.server = {"127.0.0.1", 9000};
    egress.request_tcp_seq = 1000 + static_cast<uint32_t>(i);
    egress.request_seq_valid = true;
    auto wire = mk(trace::SpanSource::kNetwork, trace::SpanKind::kClient, "lo", 0, t0 + 3 * ms, t0 + 36 * ms);
    wire.request_tcp_seq = egress.request_tcp_seq;
    wire.request_seq_valid = true;
    auto backend = mk(trace::SpanSource::kSystem, trace::SpanKind::kServer, "backend", 2000, t0 + 4 * ms, t0 + 35 * ms);
    backend.request_tcp_seq = egress.request_tcp_seq;
    backend.request_seq_valid = true;
    backend.client = egress.client;
    backend.server = egress.server;
    auto app_span = mk(trace::SpanSource::kApplication, trace::SpanKind::kServer, "backend", 2000, t0 + 5 * ms, t0 + 34 * ms);
    app_span.parent_span_id = egress.span_id;  // traceparent sent by nginx
    auto db = mk(trace::SpanSource::kApplication, trace::SpanKind::kInternal, "backend", 2000, t0 + 10 * ms, t0 + 30 * ms);
    db.name = "SELECT items";
    db.endpoint = "SELECT items";
    db.parent_span_id = app_span.span_id;
    for (auto* s : {&ingress, &egress, &wire, &backend, &app_span, &db}) ex.OnSpan(*s);
    std::printf("%s\n", Hex(tid).c_str());
  }
  // Traffic that decides the Overview's default service, all older than the
  // gateway traces (so they stay the newest requests): Kong-style health
  // checks make nginx the busiest service (not the alphabetically first,
  // "backend"); sonde-server answering the UI would be busier still, but it
  // is Sonde's own and hidden unless asked. Neither touches the map's
  // seeded calls (A spans are not calls; sonde-server is hidden there too).
  for (int i = 0; i < 3 * traces; ++i) {
    trace::Span s;
    Fill(s.trace_id, rng);
    Fill(s.span_id, rng);
    s.source = trace::SpanSource::kApplication;
    s.kind = trace::SpanKind::kServer;
    s.service_name = "nginx";
    s.comm = "nginx";
    s.pid = 1000;
    s.tid = 1001;
    s.start_unix_ns = base - 30'000 * ms + static_cast<uint64_t>(i) * 100 * ms;
    s.end_unix_ns = s.start_unix_ns + 1 * ms;
    s.protocol = protocols::L7Protocol::kHttp1;
    s.endpoint = "GET /health";
    s.name = s.endpoint;
    s.http_status = 200;
    ex.OnSpan(s);
  }
  for (int i = 0; i < 10 * traces; ++i) {
    trace::Span s;
    Fill(s.trace_id, rng);
    Fill(s.span_id, rng);
    s.source = trace::SpanSource::kSystem;
    s.kind = trace::SpanKind::kServer;
    s.service_name = "sonde-server";
    s.comm = "sonde-server";
    s.pid = 3000;
    s.tid = 3001;
    s.start_unix_ns = base - 40'000 * ms + static_cast<uint64_t>(i) * 100 * ms;
    s.end_unix_ns = s.start_unix_ns + 2 * ms;
    s.protocol = protocols::L7Protocol::kHttp1;
    s.endpoint = "GET /api/services";
    s.name = s.endpoint;
    s.http_status = 200;
    s.client = {"127.0.0.1", static_cast<uint16_t>(40000 + i)};
    s.server = {"127.0.0.1", 8080};
    ex.OnSpan(s);
  }
  for (int w = 0; w < 60; ++w) {
    v1::RedWindow r;
    r.set_window_start_unix_ns(base + static_cast<uint64_t>(w) * 1000 * ms);
    r.set_window_end_unix_ns(base + static_cast<uint64_t>(w + 1) * 1000 * ms);
    r.set_service_name("nginx");
    r.set_endpoint("GET /api/items/{id}");
    r.set_requests(10 + static_cast<uint64_t>(w % 7));
    r.set_errors(w % 10 == 0 ? 2 : 0);
    for (uint64_t b : {1ull, 5ull, 10ull, 50ull, 100ull}) r.add_bucket_bounds_ns(b * ms);
    for (uint64_t c : std::initializer_list<uint64_t>{1, 4, 3, 2, static_cast<uint64_t>(w % 7), 0}) r.add_bucket_counts(c);
    ex.AddRedWindow(r);
    v1::TcpWindow t;
    t.set_window_start_unix_ns(base + static_cast<uint64_t>(w) * 1000 * ms);
    t.mutable_client()->set_address("127.0.0.1");
    t.mutable_server()->set_address("127.0.0.1");
    t.mutable_server()->set_port(9000);
    t.set_comm("nginx");
    t.set_srtt_us(80 + static_cast<uint32_t>(w % 5) * 10);
    t.set_handshake_rtt_sum_us(60);
    t.set_handshake_count(1);
    t.set_retransmits(w % 13 == 0 ? 1 : 0);
    t.set_active_connections(4);
    ex.AddTcpWindow(t);
  }
  v1::ProfileBatch prof;
  const char* stacks[] = {"nginx;ngx_worker_process_cycle;ngx_process_events_and_timers;epoll_wait",
                          "nginx;ngx_worker_process_cycle;ngx_http_proxy_handler;ngx_http_upstream_init",
                          "backend;main;handle_request;json_encode",
                          "backend;main;handle_request;query_db;read"};
  for (int k = 0; k < 4; ++k) {
    auto* st = prof.add_stacks();
    st->set_stack(stacks[k]);
    st->set_count(static_cast<uint64_t>(10 * (k + 1)));
    st->set_value(static_cast<uint64_t>(10 * (k + 1)));
    st->set_pid(k < 2 ? 1000 : 2000);
    st->set_comm(k < 2 ? "nginx" : "backend");
    st->set_kind(v1::CPU_KIND_ON_CPU);
    st->set_window_start_unix_ns(base);
    st->set_window_end_unix_ns(base + 60'000 * ms);
  }
  ex.AddProfileStacks(prof);
  const bool ok = ex.Flush(std::chrono::seconds(20));
  ex.Stop();
  if (!ok) {
    std::fprintf(stderr, "seed: server did not acknowledge everything\n");
    return 1;
  }
  return 0;
}
