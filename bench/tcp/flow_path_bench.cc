// Packets/s through the user-space packet path on one core: parse -> flow
// table (-> network spans). Frames are generated in memory: many concurrent
// HTTP/1.1 keep-alive flows, with a fraction of retransmissions.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "agent/packet/flow_table.h"
#include "agent/packet/flow_conn_feed.h"
#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

struct Trace {
  std::vector<std::vector<uint8_t>> frames;
};

// `flows` connections, each doing `exchanges` GET/200 exchanges, interleaved.
const Trace& MakeTrace(int flows, int exchanges) {
  static std::map<std::pair<int, int>, Trace> cache;
  auto& t = cache[{flows, exchanges}];
  if (!t.frames.empty()) return t;
  const std::string req = "GET /api/v1/items/123 HTTP/1.1\r\nHost: backend\r\nUser-Agent: bench\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n" +
                           std::string(64, 'j');
  std::vector<uint32_t> cseq(flows, 1001), sseq(flows, 5001);
  auto seg = [&](int f, bool from_client, uint8_t flags, std::string payload) {
    TcpSeg s;
    s.src = from_client ? "10.1.0.1" : "10.2.0.1";
    s.dst = from_client ? "10.2.0.1" : "10.1.0.1";
    const uint16_t cport = static_cast<uint16_t>(20000 + f);
    s.sport = from_client ? cport : 8080;
    s.dport = from_client ? 8080 : cport;
    s.seq = from_client ? cseq[f] : sseq[f];
    s.ack = from_client ? sseq[f] : cseq[f];
    s.flags = flags;
    s.payload = std::move(payload);
    t.frames.push_back(Frame(s));
  };
  for (int f = 0; f < flows; ++f) {
    cseq[f] = 1000; sseq[f] = 5000;
    seg(f, true, kSyn, {});
    cseq[f] = 1001;
    seg(f, false, kSyn | kAck, {});
    sseq[f] = 5001;
    seg(f, true, kAck, {});
  }
  for (int e = 0; e < exchanges; ++e) {
    for (int f = 0; f < flows; ++f) {
      seg(f, true, kAck | kPsh, req);
      if ((e + f) % 50 == 0) seg(f, true, kAck | kPsh, req);  // 2 % retransmitted
      cseq[f] += req.size();
      seg(f, false, kAck | kPsh, resp);
      sseq[f] += resp.size();
      seg(f, true, kAck, {});
    }
  }
  return t;
}

void BM_Parse(benchmark::State& state) {
  const auto& t = MakeTrace(256, 8);
  ParsedPacket p;
  for (auto _ : state) {
    for (const auto& f : t.frames) benchmark::DoNotOptimize(ParsePacket(1, f, 1, p));
  }
  state.SetItemsProcessed(state.iterations() * t.frames.size());
}
BENCHMARK(BM_Parse);

void BM_ParseAndFlowTable(benchmark::State& state) {
  const auto& t = MakeTrace(static_cast<int>(state.range(0)), 8);
  for (auto _ : state) {
    FlowTable table;
    ParsedPacket p;
    uint64_t ts = 1;
    for (const auto& f : t.frames) {
      if (ParsePacket(1, f, ts += 1000, p) == ParseStatus::kOk) table.OnPacket(p);
    }
    benchmark::DoNotOptimize(table.size());
  }
  state.SetItemsProcessed(state.iterations() * t.frames.size());
}
BENCHMARK(BM_ParseAndFlowTable)->Arg(64)->Arg(4096);

void BM_ParseFlowTableAndRecords(benchmark::State& state) {
  const auto& t = MakeTrace(static_cast<int>(state.range(0)), 8);
  uint64_t spans = 0;
  for (auto _ : state) {
    core::MonotonicToRealtime clock;
    FlowConnFeed builder([&](conn::ConnRecord&&) { ++spans; }, clock);
    FlowTable table(FlowTableOptions{}, &builder);
    ParsedPacket p;
    uint64_t ts = 1;
    for (const auto& f : t.frames) {
      if (ParsePacket(1, f, ts += 1000, p) == ParseStatus::kOk) table.OnPacket(p);
    }
  }
  state.SetItemsProcessed(state.iterations() * t.frames.size());
  state.counters["spans_per_iter"] = static_cast<double>(spans) / state.iterations();
}
BENCHMARK(BM_ParseFlowTableAndRecords)->Arg(64)->Arg(4096);

}  // namespace
}  // namespace sonde::packet

BENCHMARK_MAIN();
