// DNS parse throughput (one core): a resolver's lookups (A and AAAA, most
// answered, some NXDOMAIN) through a client-side DnsSession over UDP (one
// call per datagram, each with its peer) and over TCP (length-prefixed,
// several frames per call).
//   dns_bench --benchmark_counters_tabular=true
// Prints bytes/s (MB/s) and records/s per workload.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "agent/protocols/dns/session.h"
#include "tests/unit/dns/dns_messages.h"

namespace {

namespace d = sonde::testing::dns;
using sonde::protocols::Direction;
using sonde::protocols::L7Record;
using sonde::protocols::Role;
using sonde::protocols::StreamView;
using sonde::protocols::dns::DnsSession;
using sonde::protocols::dns::Transport;

struct Lookups {
  std::vector<std::string> queries, responses;
  size_t bytes = 0;
};

Lookups Make(int n) {
  Lookups l;
  for (int i = 0; i < n; ++i) {
    const std::string name = "upstream-" + std::to_string(i % 40) + ".svc.cluster.local";
    const uint16_t type = i % 2 ? 28 : 1;
    const bool missing = i % 10 == 9;
    l.queries.push_back(d::Query(static_cast<uint16_t>(i), name, type));
    l.responses.push_back(d::Response(static_cast<uint16_t>(i), name, type, missing ? 3 : 0, missing ? 0 : 2));
    l.bytes += l.queries.back().size() + l.responses.back().size();
  }
  return l;
}

void Feed(DnsSession& s, Direction dir, std::string_view bytes, uint64_t& ts) {
  StreamView v;
  v.bytes = bytes;
  v.chunks.resize(1);
  v.chunks[0].ts_enter_ns = ++ts;
  v.chunks[0].ts_exit_ns = ++ts;
  v.chunks[0].peer.family = 2;
  v.chunks[0].peer.port = 53;
  v.chunks[0].peer.addr = {10, 0, 0, 53};
  s.OnBytes(dir, v);
}

void BM_DnsUdpParse(benchmark::State& state) {
  constexpr int kLookups = 256;
  const Lookups l = Make(kLookups);
  const int in_flight = static_cast<int>(state.range(0));
  std::vector<L7Record> out;
  uint64_t records = 0;
  for (auto _ : state) {
    DnsSession session(Role::kClient, false, Transport::kUdp);
    uint64_t ts = 0;
    for (int i = 0; i < kLookups; i += in_flight) {
      for (int j = i; j < i + in_flight && j < kLookups; ++j) Feed(session, Direction::kEgress, l.queries[j], ts);
      for (int j = i; j < i + in_flight && j < kLookups; ++j) Feed(session, Direction::kIngress, l.responses[j], ts);
      session.TakeRecords(ts, false, out);
      records += out.size();
      out.clear();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(l.bytes * state.iterations()));
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DnsUdpParse)->ArgNames({"in_flight"})->Arg(1)->Arg(2)->Arg(32);

void BM_DnsTcpParse(benchmark::State& state) {
  constexpr int kLookups = 256;
  const Lookups l = Make(kLookups);
  std::string queries, responses;
  for (int i = 0; i < kLookups; ++i) {
    queries += d::Tcp(l.queries[i]);
    responses += d::Tcp(l.responses[i]);
  }
  std::vector<L7Record> out;
  uint64_t records = 0;
  for (auto _ : state) {
    DnsSession session(Role::kClient, false, Transport::kTcp);
    uint64_t ts = 0;
    // Pipelined: 16 frames per call each way.
    const size_t q_step = queries.size() / 16, r_step = responses.size() / 16;
    std::string pending_q, pending_r;
    for (int c = 0; c < 16; ++c) {
      pending_q.append(queries, c * q_step, c == 15 ? std::string::npos : q_step);
      StreamView v;
      v.chunks.resize(1);
      v.chunks[0].ts_enter_ns = ++ts;
      v.chunks[0].ts_exit_ns = ++ts;
      v.bytes = pending_q;
      pending_q.erase(0, session.OnBytes(Direction::kEgress, v));
      pending_r.append(responses, c * r_step, c == 15 ? std::string::npos : r_step);
      v.bytes = pending_r;
      pending_r.erase(0, session.OnBytes(Direction::kIngress, v));
      session.TakeRecords(ts, false, out);
      records += out.size();
      out.clear();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>((queries.size() + responses.size()) * state.iterations()));
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DnsTcpParse);

}  // namespace

BENCHMARK_MAIN();
