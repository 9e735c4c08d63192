// ClickHouse backend figures (issue 18), against a private clickhouse-server
// this program starts (temp dir, run-time ports) and stops:
//   ingest     spans/s and spans per CPU-second of the storage client (the
//              sonde-server side: row building, zstd, RowBinary, HTTP),
//              with clickhouse-server's own CPU beside it;
//   trace      Trace(id) latency (p50/p99 of 200 random ids) with all
//              spans stored;
//   search     SearchTraces(service=, status_class=5) latency;
//   formats    the insert format: the same 100k span_chunks rows inserted as
//              RowBinary, TabSeparated and JSONEachRow (body bytes and
//              clickhouse-server CPU to parse and store them).
// SONDE_BENCH_SPANS (default 1,000,000; the figure is 10,000,000),
// SONDE_BENCH_BATCH (default 2000 spans per WriteBatch), SONDE_BENCH_WRITERS
// (default 2 concurrent writers, as two agents' streams).
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include <httplib.h>

#include "server/store/clickhouse_storage.h"
#include "tests/e2e/clickhouse/clickhouse_server.h"
#include "bench/server/realistic_span.h"

using namespace sonde;

namespace {

uint64_t EnvOr(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : def;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

using bench::Id;
using bench::RealisticSpan;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main() {
  const uint64_t total = EnvOr("SONDE_BENCH_SPANS", 1'000'000);
  const uint64_t batch_size = EnvOr("SONDE_BENCH_BATCH", 2000);
  const uint64_t writers = std::max<uint64_t>(1, EnvOr("SONDE_BENCH_WRITERS", 2));
  std::string error;
  auto clickhouse = testing::ClickHouseServer::Start(&error);
  if (!clickhouse) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  server::ClickHouseOptions o;
  o.url = clickhouse->Url("bench");
  auto store = server::ClickHouseStorage::Open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  std::printf("clickhouse %s, %llu spans, batches of %llu, %llu writers\n", (*store)->server_version().c_str(),
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(batch_size),
              static_cast<unsigned long long>(writers));

  const uint64_t t0 = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()) -
                      3'600'000'000'000ull;
  const uint64_t batches = (total + batch_size - 1) / batch_size;
  std::atomic<uint64_t> next{0}, failures{0};
  std::vector<double> cpu(writers, 0.0);
  const double ch_cpu0 = clickhouse->CpuSeconds();
  const auto wall0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (uint64_t w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      server::IngestContext ctx{"bench-host", "bench-node", "bench-" + std::to_string(w)};
      uint64_t seq = 0;
      for (uint64_t b; (b = next.fetch_add(1)) < batches;) {
        v1::Batch batch;  // built outside the measured CPU
        batch.set_sequence(++seq);
        for (uint64_t i = 0; i < batch_size; ++i) {
          const uint64_t span = b * batch_size + i;
          *batch.add_spans() = RealisticSpan(span / 10, span, t0 + span * 1000);
        }
        const double c0 = ThreadCpuSeconds();
        auto r = (*store)->WriteBatch(ctx, batch);
        cpu[w] += ThreadCpuSeconds() - c0;
        if (!r.ok()) {
          if (failures++ == 0) std::fprintf(stderr, "write: %s\n", r.status().ToString().c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double ch_cpu = clickhouse->CpuSeconds() - ch_cpu0;
  double client_cpu = 0;
  for (double c : cpu) client_cpu += c;
  const double spans = static_cast<double>(batches * batch_size);
  std::printf("ingest: %.0f spans/s wall, %.0f spans per server CPU-second (%.2f s), clickhouse CPU %.2f s "
              "(%.0f spans per clickhouse CPU-second), %llu failed batches\n",
              spans / wall, spans / client_cpu, client_cpu, ch_cpu, spans / ch_cpu,
              static_cast<unsigned long long>(failures.load()));
  std::printf("stored: %s", clickhouse->Query("SELECT sum(n), count(), sum(length(data)) FROM bench.span_chunks").c_str());

  // Trace by id: random stored traces.
  std::mt19937_64 rng(42);
  std::vector<double> ms;
  const double ch_q0 = clickhouse->CpuSeconds();
  for (int i = 0; i < 200; ++i) {
    const uint64_t trace = rng() % (batches * batch_size / 10);
    const auto q0 = std::chrono::steady_clock::now();
    auto spans_of = (*store)->Trace(Id(trace, 16));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count());
    if (!spans_of.ok() || spans_of->size() != 10) {
      std::fprintf(stderr, "trace %llu: %s, %zu spans\n", static_cast<unsigned long long>(trace),
                   spans_of.ok() ? "ok" : spans_of.status().ToString().c_str(), spans_of.ok() ? spans_of->size() : 0);
      return 1;
    }
  }
  std::printf("trace by id: p50 %.1f ms, p99 %.1f ms (clickhouse CPU %.2f s for 200 lookups)\n", Percentile(ms, 0.5),
              Percentile(ms, 0.99), clickhouse->CpuSeconds() - ch_q0);
  ms.clear();
  for (int i = 0; i < 20; ++i) {
    server::TraceQuery q;
    q.service = "backend";
    q.status_class = 5;
    q.limit = 50;
    const auto q0 = std::chrono::steady_clock::now();
    auto found = (*store)->SearchTraces(q);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count());
    if (!found.ok() || found->empty()) {
      std::fprintf(stderr, "search failed\n");
      return 1;
    }
  }
  std::printf("search service=backend status_class=5 limit 50: p50 %.1f ms, p99 %.1f ms\n", Percentile(ms, 0.5),
              Percentile(ms, 0.99));

  // Insert formats, ClickHouse's side: the same rows as each format's body.
  auto& ch = (*store)->client();
  for (const char* format : {"RowBinary", "TabSeparated", "JSONEachRow"}) {
    auto body = ch.Query(std::string("SELECT * FROM span_chunks LIMIT 100000 FORMAT ") + format);
    if (!body.ok() || !ch.Query("DROP TABLE IF EXISTS format_probe").ok() ||
        !ch.Query("CREATE TABLE format_probe AS span_chunks").ok()) {
      std::fprintf(stderr, "format %s: setup failed\n", format);
      return 1;
    }
    double best = 1e9;
    for (int round = 0; round < 3; ++round) {
      (void)ch.Query("TRUNCATE TABLE format_probe");
      const double c0 = clickhouse->CpuSeconds();
      httplib::Client direct("127.0.0.1", clickhouse->http_port());
      direct.set_read_timeout(120, 0);
      auto res = direct.Post(("/?database=bench&query=" + std::string("INSERT%20INTO%20format_probe%20FORMAT%20") +
                              format).c_str(),
                             *body, "application/octet-stream");
      if (!res || res->status != 200) {
        std::fprintf(stderr, "format %s: insert failed\n", format);
        return 1;
      }
      best = std::min(best, clickhouse->CpuSeconds() - c0);
    }
    std::printf("insert format %-12s: %6.1f MB body for 100k rows, clickhouse CPU %.2f s (best of 3)\n", format,
                static_cast<double>(body->size()) / 1e6, best);
  }
  return failures.load() == 0 ? 0 : 1;
}
