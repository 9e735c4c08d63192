// sonde-server figures:
//  BM_StorageIngest      spans/s into SQLite on one core (WriteBatch of 2000
//                        realistic S spans: headers, attributes, tuples).
//  BM_GrpcIngest         spans/s through the whole path: exporter (convert,
//                        zlib, gRPC stream) -> IngestService -> SQLite.
//  BM_TraceById          Trace(id) + assembly latency with SONDE_BENCH_SPANS
//                        spans stored (default 2,000,000; the goal figure is
//                        10,000,000: SONDE_BENCH_SPANS=10000000).
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <filesystem>
#include <random>

#include "agent/export/server_exporter.h"
#include "server/ingest/ingest_service.h"
#include "server/ingest/trace_join.h"
#include "server/query/trace_assembler.h"
#include "server/store/sqlite_storage.h"
#include "bench/server/realistic_span.h"

using namespace sonde;

namespace {

// SONDE_BENCH_DIR: where the databases go (default <build>/bench-output).
std::filesystem::path BenchRoot() {
  if (const char* d = std::getenv("SONDE_BENCH_DIR")) return d;
  return std::filesystem::path(SONDE_BINARY_DIR) / "bench-output";
}

double DbMegabytes(const std::filesystem::path& dir) {
  double bytes = 0;
  for (const char* f : {"sonde.db", "sonde.db-wal"}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(dir / f, ec);
    if (!ec) bytes += static_cast<double>(n);
  }
  return bytes / 1e6;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::filesystem::path BenchDir(const std::string& name) {
  auto p = BenchRoot() / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

std::unique_ptr<server::SqliteStorage> Open(const std::filesystem::path& dir) {
  server::SqliteStorage::Options o;
  o.path = (dir / "sonde.db").string();
  if (const char* c = std::getenv("SONDE_BENCH_COMPRESS")) o.compress_spans = std::string(c) != "0";
  if (const char* l = std::getenv("SONDE_BENCH_ZSTD_LEVEL")) o.zstd_level = std::atoi(l);
  return std::move(*server::SqliteStorage::Open(o));
}

using bench::Id;
using bench::RealisticSpan;

void BM_StorageIngest(benchmark::State& state) {
  auto dir = BenchDir("ingest");
  auto store = Open(dir);
  const int batch_size = static_cast<int>(state.range(0));
  uint64_t seq = 0, span = 0;
  const uint64_t t0 = 1'700'000'000'000'000'000ull;
  std::vector<v1::Batch> batches(8);  // prebuilt: measure storage, not proto building
  for (auto& b : batches) {
    for (int i = 0; i < batch_size; ++i, ++span) *b.add_spans() = RealisticSpan(span / 10, span, t0 + span * 1000);
  }
  for (auto _ : state) {
    auto& b = batches[seq % batches.size()];
    b.set_sequence(++seq);
    auto r = store->WriteBatch({"h", "n", "bench"}, b);
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch_size);
  state.counters["db_MB"] = DbMegabytes(dir);
}
BENCHMARK(BM_StorageIngest)->Arg(500)->Arg(2000)->Unit(benchmark::kMillisecond)->MinTime(3);

// The cost of the trace join across agents (server/ingest/trace_join.h) on
// the same batches: mode 0 plain store, 1 joining store (every span indexed,
// none joins: the worst case for the index), 2 joining store where batches
// alternate between two "agents" and every server span of the second joins a
// client span of the first (a rename per trace).
void BM_StorageIngestJoin(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  auto dir = BenchDir("ingest-join-" + std::to_string(mode));
  std::unique_ptr<server::Storage> store = Open(dir);
  if (mode > 0) store = std::make_unique<server::JoiningStorage>(std::move(store), server::TraceJoinOptions{});
  constexpr int kBatch = 2000;
  const uint64_t t0 = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::vector<v1::Batch> batches(8);
  uint64_t span = 0;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    for (int i = 0; i < kBatch; ++i, ++span) {
      v1::Span s = RealisticSpan(span / 10, span, t0 + span * 1000);
      if (mode == 2 && bi % 2 == 1) {
        // The other agent's side of the previous batch's client span `i`.
        const v1::Span& c = batches[bi - 1].spans(i);
        s.set_kind(c.kind() == v1::SPAN_KIND_CLIENT ? v1::SPAN_KIND_SERVER : v1::SPAN_KIND_CLIENT);
        s.clear_parent_span_id();
        *s.mutable_client() = c.client();
        s.set_request_tcp_seq(c.request_tcp_seq());
        s.set_start_unix_ns(c.start_unix_ns() + 1000);
      }
      *batches[bi].add_spans() = std::move(s);
    }
  }
  uint64_t seq = 0;
  for (auto _ : state) {
    auto& b = batches[seq % batches.size()];
    b.set_sequence(++seq);
    auto r = store->WriteBatch({"h", "n", "bench-" + std::to_string(seq % 2)}, b);
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  if (mode > 0) {
    const auto& c = static_cast<server::JoiningStorage&>(*store).joiner().counters();
    state.counters["joins"] = static_cast<double>(c.joins.load());
    state.counters["renamed"] = static_cast<double>(c.renamed_spans.load());
  }
}
BENCHMARK(BM_StorageIngestJoin)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(3);

void BM_GrpcIngest(benchmark::State& state) {
  auto dir = BenchDir("grpc");
  auto store = Open(dir);
  server::IngestService service(store.get(), "");
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto srv = b.BuildAndStart();
  exporter::ExporterOptions o;
  o.target = "127.0.0.1:" + std::to_string(port);
  o.max_queued_items = 2'000'000;
  exporter::ServerExporter ex(o);
  ex.Start();
  trace::Span s;
  s.kind = trace::SpanKind::kServer;
  s.name = s.endpoint = "GET /api/items/{id}";
  s.service_name = "nginx";
  s.client = {"10.0.0.1", 40000};
  s.server = {"10.0.0.2", 8080};
  s.request_headers = {{"host", "api.example.com"}, {"user-agent", "curl/8.0"}};
  s.attributes = {{"http.route", std::string("/api/items/{id}")}};
  uint64_t n = 0;
  for (auto _ : state) {
    for (int i = 0; i < 10000; ++i, ++n) {
      s.trace_id[0] = static_cast<uint8_t>(n);
      s.trace_id[1] = static_cast<uint8_t>(n >> 8);
      s.trace_id[2] = static_cast<uint8_t>(n >> 16);
      s.span_id[0] = static_cast<uint8_t>(n);
      s.start_unix_ns = 1'700'000'000'000'000'000ull + n;
      s.end_unix_ns = s.start_unix_ns + 1000;
      ex.OnSpan(s);
    }
    ex.Flush(std::chrono::seconds(60));
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  state.counters["dropped"] = static_cast<double>(ex.stats().items_dropped_queue_full);
  ex.Stop();
  srv->Shutdown();
}
BENCHMARK(BM_GrpcIngest)->Unit(benchmark::kMillisecond)->MinTime(3)->UseRealTime();

void BM_TraceById(benchmark::State& state) {
  const char* env = std::getenv("SONDE_BENCH_SPANS");
  const uint64_t total = env ? std::strtoull(env, nullptr, 10) : 2'000'000;
  const uint64_t spans_per_trace = 10;
  auto dir = BenchRoot() / ("trace-" + std::to_string(total));
  std::filesystem::create_directories(dir);
  const bool fresh = !std::filesystem::exists(dir / "sonde.db.complete");
  if (fresh) std::filesystem::remove(dir / "sonde.db");
  auto store = Open(dir);
  const uint64_t t0 = 1'700'000'000'000'000'000ull;
  static double fill_wall_s = 0, fill_cpu_s = 0;  // benchmark calls this function repeatedly
  if (fresh) {  // fill once, reuse on later runs
    const auto wall0 = std::chrono::steady_clock::now();
    double build_cpu = 0;
    const double cpu0 = ThreadCpuSeconds();
    uint64_t span = 0, seq = 0;
    while (span < total) {
      v1::Batch b;
      b.set_sequence(++seq);
      const double c0 = ThreadCpuSeconds();
      for (int i = 0; i < 5000 && span < total; ++i, ++span)
        *b.add_spans() = RealisticSpan(span / spans_per_trace, span, t0 + span * 1000);
      build_cpu += ThreadCpuSeconds() - c0;
      (void)store->WriteBatch({"h", "n", "fill"}, b);
    }
    // Storage only: the CPU spent building the protos is not counted.
    fill_cpu_s = ThreadCpuSeconds() - cpu0 - build_cpu;
    fill_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    std::ofstream(dir / "sonde.db.complete") << total;
  }
  std::mt19937_64 rng(1);
  const uint64_t traces = total / spans_per_trace;
  size_t found = 0;
  for (auto _ : state) {
    auto id = Id(rng() % traces, 16);
    auto spans = store->Trace(id);
    auto t = server::AssembleTrace(*spans);
    found += t.spans.size();
    benchmark::DoNotOptimize(t);
  }
  state.counters["spans_stored"] = static_cast<double>(total);
  state.counters["db_MB"] = DbMegabytes(dir);
  if (fill_cpu_s > 0) {
    state.counters["fill_wall_s"] = fill_wall_s;
    state.counters["fill_cpu_s"] = fill_cpu_s;  // WriteBatch only
    state.counters["fill_spans_per_cpu_s"] = static_cast<double>(total) / std::max(fill_cpu_s, 1e-9);
  }
  state.counters["spans_per_trace"] = static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_TraceById)->Unit(benchmark::kMicrosecond)->MinTime(2);

}  // namespace

BENCHMARK_MAIN();
