// OTLP ingest benchmarks. Spans carry 20 attributes (Kong-like: legacy HTTP
// names, strings and ints) in batches of 512 (the OTel BatchSpanProcessor
// default), 10 resource attributes.
//   BM_DecodeAndIngest/protobuf: one thread, body bytes -> agent spans, the
//     receivers' path (wire decoding, no protobuf messages).
//   BM_DecodeAndIngest/protobuf_current: same with current-semconv names
//     (OTel SDK HTTP server spans: nothing to map, more to lift).
//   BM_DecodeAndIngestProtobufMessage: the protobuf-message path (taken when
//     an OTLP sink forwards traces).
//   BM_DecodeAndIngest/json: OTLP/JSON.
//   BM_EndToEnd/grpc|http[_gzip]: a client process (this binary re-executed
//     with --otlp-client) floods the receiver over loopback; the figure is
//     spans per CPU-second of the receiving process (= spans/s per core),
//     client_cpu_s is the client's own CPU time (not included).
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent/otlp/body_codec.h"
#include "agent/otlp/json_codec.h"
#include "agent/otlp/receiver.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

extern char** environ;

namespace {

using sonde::otlp::ExportTraceRequest;

constexpr int kSpansPerRequest = 512;

void Attr(google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>* attrs,
          const std::string& key, const std::string& value) {
  auto* kv = attrs->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}
void IntAttr(google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>* attrs,
             const std::string& key, int64_t value) {
  auto* kv = attrs->Add();
  kv->set_key(key);
  kv->mutable_value()->set_int_value(value);
}

enum class Workload { kKong, kCurrent };

ExportTraceRequest MakeRequest(Workload workload = Workload::kKong) {
  ExportTraceRequest request;
  auto* rs = request.add_resource_spans();
  auto* res = rs->mutable_resource()->mutable_attributes();
  Attr(res, "service.name", "kong");
  Attr(res, "service.version", "3.6.1");
  Attr(res, "service.instance.id", "kong-7d9f8-abcde");
  Attr(res, "host.name", "gw-node-1");
  Attr(res, "os.type", "linux");
  IntAttr(res, "process.pid", 4242);
  Attr(res, "process.executable.name", "nginx");
  Attr(res, "telemetry.sdk.name", "opentelemetry");
  Attr(res, "telemetry.sdk.language", "lua");
  Attr(res, "deployment.environment", "prod");
  auto* ss = rs->add_scope_spans();
  ss->mutable_scope()->set_name("kong-internal");
  for (int i = 0; i < kSpansPerRequest; ++i) {
    auto* s = ss->add_spans();
    std::string trace_id(16, '\0'), span_id(8, '\0');
    for (int b = 0; b < 16; ++b) trace_id[b] = static_cast<char>(i * 7 + b + 1);
    for (int b = 0; b < 8; ++b) span_id[b] = static_cast<char>(i * 3 + b + 1);
    s->set_trace_id(trace_id);
    s->set_span_id(span_id);
    s->set_parent_span_id(std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    s->set_name("kong");
    s->set_kind(opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
    s->set_start_time_unix_nano(1700000000000000000ull + static_cast<uint64_t>(i) * 1000);
    s->set_end_time_unix_nano(1700000000002000000ull + static_cast<uint64_t>(i) * 1000);
    auto* a = s->mutable_attributes();
    if (workload == Workload::kCurrent) {
      // An OTel SDK HTTP server span with current names (20 attributes).
      Attr(a, "http.request.method", "GET");
      Attr(a, "url.full", "https://api.example.com/v1/orders/" + std::to_string(i) + "?expand=items");
      Attr(a, "url.path", "/v1/orders/" + std::to_string(i));
      Attr(a, "url.query", "expand=items");
      Attr(a, "url.scheme", "https");
      Attr(a, "server.address", "api.example.com");
      IntAttr(a, "server.port", 443);
      Attr(a, "network.protocol.name", "http");
      Attr(a, "network.protocol.version", "1.1");
      IntAttr(a, "http.response.status_code", 200);
      Attr(a, "user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0");
      Attr(a, "client.address", "10.12.0.17");
      IntAttr(a, "client.port", 50000 + i);
      Attr(a, "network.peer.address", "10.12.0.17");
      IntAttr(a, "network.peer.port", 50000 + i);
      Attr(a, "http.route", "/v1/orders/{id}");
      IntAttr(a, "http.request.body.size", 0);
      IntAttr(a, "http.response.body.size", 1834);
      Attr(a, "enduser.id", "mobile-app");
      Attr(a, "tenant", "acme");
      s->mutable_status()->set_code(opentelemetry::proto::trace::v1::Status::STATUS_CODE_UNSET);
      continue;
    }
    Attr(a, "http.method", "GET");
    Attr(a, "http.url", "https://api.example.com/v1/orders/" + std::to_string(i) + "?expand=items");
    Attr(a, "http.host", "api.example.com");
    Attr(a, "http.scheme", "https");
    Attr(a, "http.flavor", "1.1");
    IntAttr(a, "http.status_code", 200);
    Attr(a, "http.user_agent", "Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0");
    Attr(a, "net.peer.ip", "10.12.0.17");
    IntAttr(a, "net.peer.port", 50000 + i);
    Attr(a, "http.route", "/v1/orders/{id}");
    Attr(a, "kong.route", "orders-route");
    Attr(a, "kong.service", "orders");
    Attr(a, "kong.consumer", "mobile-app");
    Attr(a, "kong.request.id", "7f2a9c1e" + std::to_string(i));
    IntAttr(a, "kong.balancer.tries", 1);
    Attr(a, "network.peer.address", "10.12.0.17");
    IntAttr(a, "http.request_content_length", 0);
    IntAttr(a, "http.response_content_length", 1834);
    Attr(a, "upstream.addr", "10.20.3.4:8080");
    Attr(a, "tenant", "acme");
    s->mutable_status()->set_code(opentelemetry::proto::trace::v1::Status::STATUS_CODE_UNSET);
  }
  return request;
}

class CountingSink : public sonde::trace::SpanSink {
 public:
  void OnSpan(const sonde::trace::Span& span) override {
    count.fetch_add(1, std::memory_order_relaxed);
    benchmark::DoNotOptimize(span.attributes.size());
  }
  std::atomic<uint64_t> count{0};
};

void BM_DecodeAndIngest(benchmark::State& state, sonde::otlp::BodyFormat format,
                        Workload workload = Workload::kKong) {
  const ExportTraceRequest request = MakeRequest(workload);
  const std::string body = format == sonde::otlp::BodyFormat::kJson ? sonde::otlp::PrintOtlpJson(request)
                                                                     : request.SerializeAsString();
  sonde::otlp::IngestOptions options;
  options.resolve_sender = false;
  sonde::otlp::Ingestor ingestor(options);
  CountingSink sink;
  ingestor.AddSpanSink(&sink);
  sonde::otlp::PeerInfo peer;
  for (auto _ : state) {
    if (format == sonde::otlp::BodyFormat::kProtobuf) {  // what both receivers do with protobuf
      if (!ingestor.ExportTracesProtobuf(body, peer).ok()) state.SkipWithError("decode failed");
      continue;
    }
    google::protobuf::Arena arena;
    auto* decoded = google::protobuf::Arena::CreateMessage<ExportTraceRequest>(&arena);
    if (!sonde::otlp::DecodeBody(body, format, decoded).ok()) state.SkipWithError("decode failed");
    ingestor.ExportTraces(*decoded, peer);
  }
  state.SetItemsProcessed(static_cast<int64_t>(sink.count.load()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["attrs_per_span"] = 20;
}
BENCHMARK_CAPTURE(BM_DecodeAndIngest, protobuf, sonde::otlp::BodyFormat::kProtobuf)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeAndIngest, protobuf_current, sonde::otlp::BodyFormat::kProtobuf, Workload::kCurrent)
    ->Unit(benchmark::kMillisecond);

// The path taken when an OTLP sink forwards traces (or the fast decoder
// declines a body): protobuf parse into an arena, then conversion.
void BM_DecodeAndIngestProtobufMessage(benchmark::State& state) {
  const std::string body = MakeRequest().SerializeAsString();
  sonde::otlp::IngestOptions options;
  options.resolve_sender = false;
  sonde::otlp::Ingestor ingestor(options);
  CountingSink sink;
  ingestor.AddSpanSink(&sink);
  sonde::otlp::PeerInfo peer;
  for (auto _ : state) {
    google::protobuf::Arena arena;
    auto* decoded = google::protobuf::Arena::CreateMessage<ExportTraceRequest>(&arena);
    if (!sonde::otlp::DecodeBody(body, sonde::otlp::BodyFormat::kProtobuf, decoded).ok()) {
      state.SkipWithError("decode failed");
    }
    ingestor.ExportTraces(*decoded, peer);
  }
  state.SetItemsProcessed(static_cast<int64_t>(sink.count.load()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_DecodeAndIngestProtobufMessage)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeAndIngest, json, sonde::otlp::BodyFormat::kJson)->Unit(benchmark::kMillisecond);

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Client side (separate process): floods the receiver for `seconds`.
// mode: grpc, grpc_gzip, http, http_gzip (gzip: compressed by the client,
// inflated by the receiver, as OTel SDKs configured with compression do).
int RunClient(const std::string& mode, int port, int seconds, int threads) {
  const ExportTraceRequest request = MakeRequest();
  const bool gzip = mode.find("gzip") != std::string::npos;
  const std::string body = gzip ? sonde::otlp::GzipCompress(request.SerializeAsString())
                                : request.SerializeAsString();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      if (mode.rfind("grpc", 0) == 0) {
        auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials());
        auto stub = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(channel);
        while (std::chrono::steady_clock::now() < deadline) {
          grpc::ClientContext ctx;
          if (gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
          opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse response;
          if (!stub->Export(&ctx, request, &response).ok()) failures++;
        }
      } else {
        httplib::Client client("127.0.0.1", port);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);  // as SDK HTTP clients (Node, Go, OkHttp) do
        while (std::chrono::steady_clock::now() < deadline) {
          httplib::Headers headers;
          if (gzip) headers.emplace("Content-Encoding", "gzip");
          auto r = client.Post("/v1/traces", headers, body, "application/x-protobuf");
          if (!r || r->status != 200) failures++;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failures.load() == 0 ? 0 : 1;
}

void BM_EndToEnd(benchmark::State& state, const char* mode) {
  CountingSink sink;
  sonde::otlp::OtlpConfig config;
  config.bind = {"127.0.0.1"};
  const bool grpc = std::string(mode).rfind("grpc", 0) == 0;
  config.grpc_port = grpc ? 0 : -1;
  config.http_port = grpc ? -1 : 0;
  sonde::otlp::OtlpReceiver receiver(config);
  receiver.AddSpanSink(&sink);
  if (!receiver.Start().ok()) {
    state.SkipWithError("receiver failed to start");
    return;
  }
  const int port = grpc ? receiver.grpc_port() : receiver.http_port();
  const int seconds = 4;
  for (auto _ : state) {
    const std::string port_text = std::to_string(port), seconds_text = std::to_string(seconds);
    const char* argv[] = {"/proc/self/exe", "--otlp-client", mode, port_text.c_str(),
                          seconds_text.c_str(), "2", nullptr};
    const uint64_t spans_before = sink.count.load();
    const double cpu_before = ProcessCpuSeconds();
    const auto wall_before = std::chrono::steady_clock::now();
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      state.SkipWithError("cannot spawn the client");
      return;
    }
    int status = 0;
    rusage client{};
    wait4(pid, &status, 0, &client);
    const double cpu = ProcessCpuSeconds() - cpu_before;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_before).count();
    const double spans = static_cast<double>(sink.count.load() - spans_before);
    state.SetIterationTime(wall);
    state.counters["spans"] = spans;
    state.counters["receiver_cpu_s"] = cpu;
    state.counters["client_cpu_s"] = static_cast<double>(client.ru_utime.tv_sec + client.ru_stime.tv_sec) +
                                     static_cast<double>(client.ru_utime.tv_usec + client.ru_stime.tv_usec) / 1e6;
    state.counters["spans_per_s"] = spans / wall;
    state.counters["spans_per_cpu_s"] = cpu > 0 ? spans / cpu : 0;
    if (WEXITSTATUS(status) != 0) state.SkipWithError("client saw failed exports");
  }
}
BENCHMARK_CAPTURE(BM_EndToEnd, grpc, "grpc")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(BM_EndToEnd, http, "http")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(BM_EndToEnd, grpc_gzip, "grpc_gzip")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
BENCHMARK_CAPTURE(BM_EndToEnd, http_gzip, "http_gzip")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && std::strcmp(argv[1], "--otlp-client") == 0) {
    return RunClient(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
