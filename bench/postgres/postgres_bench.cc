// PostgreSQL parse throughput (one core): pgbench-shaped exchanges through a
// client-side PostgresSession, in simple, extended and prepared mode, with 1
// or 100 rows per answer; and NormalizeQuery alone.
//   postgres_bench --benchmark_counters_tabular=true
// Prints bytes/s (MB/s) and records/s per workload.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "agent/protocols/postgres/query_text.h"
#include "agent/protocols/postgres/session.h"
#include "tests/unit/postgres/pg_messages.h"

namespace {

namespace pg = sonde::testing::pg;
using sonde::protocols::Direction;
using sonde::protocols::L7Record;
using sonde::protocols::Role;
using sonde::protocols::StreamView;

const char* const kStatements[] = {
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
};
const char* const kSimple[] = {
    "UPDATE pgbench_accounts SET abalance = abalance + -4213 WHERE aid = 81234;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + -4213 WHERE tid = 7;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 81234, -4213, CURRENT_TIMESTAMP);",
};

// One call per message batch, as a client's write / read would carry it.
void Feed(sonde::protocols::ProtocolSession& s, Direction dir, std::string_view bytes, uint64_t& ts) {
  StreamView v;
  v.bytes = bytes;
  v.chunks.resize(1);
  v.chunks[0].ts_enter_ns = ++ts;
  v.chunks[0].ts_exit_ns = ++ts;
  s.OnBytes(dir, v);
}

enum Mode { kSimpleMode = 0, kExtendedMode = 1, kPreparedMode = 2 };

void BM_PostgresParse(benchmark::State& state) {
  const auto mode = static_cast<Mode>(state.range(0));
  const int rows = static_cast<int>(state.range(1));
  constexpr int kExchanges = 256;
  std::string answer_rows = pg::RowDescription();
  for (int r = 0; r < rows; ++r) answer_rows += pg::DataRow("12345");
  std::vector<std::string> requests, answers;
  size_t bytes_per_iter = 0;
  std::string prepare;
  if (mode == kPreparedMode) {
    for (int i = 0; i < 4; ++i) prepare += pg::Parse("P0_" + std::to_string(i), kStatements[i]) ;
    prepare += pg::Sync();
  }
  for (int i = 0; i < kExchanges; ++i) {
    const int k = i % 4;
    const bool select = k == 1;
    const std::string done = select ? pg::Complete("SELECT " + std::to_string(rows)) : pg::Complete("UPDATE 1");
    switch (mode) {
      case kSimpleMode:
        requests.push_back(pg::Query(kSimple[k]));
        answers.push_back((select ? answer_rows : std::string()) + done + pg::Ready('T'));
        break;
      case kExtendedMode:
        requests.push_back(pg::Parse("", kStatements[k]) + pg::Bind("", "") + pg::DescribePortal("") +
                           pg::Execute("") + pg::Sync());
        answers.push_back(pg::ParseComplete() + pg::BindComplete() + (select ? answer_rows : pg::NoData()) + done +
                          pg::Ready('T'));
        break;
      case kPreparedMode:
        requests.push_back(pg::Bind("", "P0_" + std::to_string(k)) + pg::DescribePortal("") + pg::Execute("") +
                           pg::Sync());
        answers.push_back(pg::BindComplete() + (select ? answer_rows : pg::NoData()) + done + pg::Ready('T'));
        break;
    }
    bytes_per_iter += requests.back().size() + answers.back().size();
  }
  const std::string startup = pg::Startup({{"user", "bench"}, {"database", "bench"}});
  const std::string ready = pg::Message('R', pg::Be32(0)) + pg::Ready();
  std::vector<L7Record> out;
  uint64_t records = 0;
  for (auto _ : state) {
    sonde::protocols::postgres::PostgresSession session(Role::kClient, false);
    uint64_t ts = 0;
    Feed(session, Direction::kEgress, startup, ts);
    Feed(session, Direction::kIngress, ready, ts);
    if (!prepare.empty()) {
      Feed(session, Direction::kEgress, prepare, ts);
      Feed(session, Direction::kIngress, pg::ParseComplete() + pg::ParseComplete() + pg::ParseComplete() +
                                             pg::ParseComplete() + pg::Ready(), ts);
    }
    for (int i = 0; i < kExchanges; ++i) {
      Feed(session, Direction::kEgress, requests[i], ts);
      Feed(session, Direction::kIngress, answers[i], ts);
      if ((i & 31) == 31) {
        session.TakeRecords(0, false, out);
        records += out.size();
        out.clear();
      }
    }
    session.TakeRecords(0, true, out);
    records += out.size();
    out.clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iter * state.iterations()));
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PostgresParse)
    ->ArgNames({"mode", "rows"})
    ->Args({kSimpleMode, 1})
    ->Args({kExtendedMode, 1})
    ->Args({kPreparedMode, 1})
    ->Args({kSimpleMode, 100})
    ->Args({kExtendedMode, 100});

// The literal-stripping normaliser alone (db.query.text).
void BM_NormalizeQuery(benchmark::State& state) {
  size_t bytes = 0;
  for (auto _ : state) {
    for (const char* q : kSimple) {
      const std::string n = sonde::protocols::postgres::NormalizeQuery(q);
      benchmark::DoNotOptimize(n.data());
      bytes += std::char_traits<char>::length(q);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["queries/s"] =
      benchmark::Counter(4.0 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_NormalizeQuery);

}  // namespace

BENCHMARK_MAIN();
