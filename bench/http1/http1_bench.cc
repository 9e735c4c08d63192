// HTTP/1 parse throughput (one core) and end-to-end user-space pipeline
// throughput from an in-memory event stream.
//   http1_bench --benchmark_counters_tabular=true
// Prints bytes/s (MB/s) and records/s per workload.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "agent/pipeline/pipeline.h"
#include "agent/protocols/http1/stitcher.h"
#include "tests/unit/conn/event_builder.h"

namespace {

using sonde::protocols::ChunkInfo;
using sonde::protocols::Direction;
using sonde::protocols::L7Record;
using sonde::protocols::Role;
using sonde::protocols::StreamView;

std::string Request(int i) {
  return "GET /api/v1/users/" + std::to_string(i) +
         "/orders?limit=10 HTTP/1.1\r\nHost: api.example.com\r\n"
         "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
         "Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\n"
         "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
         "X-Request-Id: 8c6d2f1e-2b7a-4d5c-9e3f-1a2b3c4d5e6f\r\nConnection: keep-alive\r\n\r\n";
}

std::string Response(size_t body, bool chunked) {
  std::string head = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
                     "Content-Type: application/json\r\nX-Kong-Request-Id: 5f0c1e7a\r\n"
                     "Connection: keep-alive\r\n";
  if (!chunked) return head + "Content-Length: " + std::to_string(body) + "\r\n\r\n" + std::string(body, 'x');
  char size[32];
  std::snprintf(size, sizeof(size), "%zx", body);
  return head + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + std::string(body, 'x') + "\r\n0\r\n\r\n";
}

// Feeds one direction in calls of at most `call` bytes, as the tracker would.
struct DirFeeder {
  std::string pending;
  uint64_t ts = 0;
  StreamView v;
  void Feed(sonde::protocols::ProtocolSession& s, Direction dir, std::string_view bytes, size_t call) {
    for (size_t off = 0; off < bytes.size(); off += call) {
      std::string_view piece = bytes.substr(off, call);
      v.chunks.resize(1);
      v.chunks[0].ts_enter_ns = ++ts;
      v.chunks[0].ts_exit_ns = ++ts;
      size_t used;
      if (pending.empty()) {
        v.bytes = piece;
        used = s.OnBytes(dir, v);
        if (used < piece.size()) pending.assign(piece.substr(used));
      } else {
        pending.append(piece);
        v.bytes = pending;
        used = s.OnBytes(dir, v);
        pending.erase(0, used);
      }
    }
  }
};

void BM_Http1Parse(benchmark::State& state) {
  const size_t body = static_cast<size_t>(state.range(0));
  const bool chunked = state.range(1) != 0;
  constexpr int kExchanges = 256;
  std::vector<std::string> reqs, resps;
  size_t bytes_per_iter = 0;
  for (int i = 0; i < kExchanges; ++i) {
    reqs.push_back(Request(i));
    resps.push_back(Response(body, chunked));
    bytes_per_iter += reqs.back().size() + resps.back().size();
  }
  std::vector<L7Record> out;
  uint64_t records = 0;
  for (auto _ : state) {
    sonde::protocols::http1::Http1Session session(Role::kClient, false);
    DirFeeder egress, ingress;
    for (int i = 0; i < kExchanges; ++i) {
      egress.Feed(session, Direction::kEgress, reqs[i], 16384);
      ingress.Feed(session, Direction::kIngress, resps[i], 16384);
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
BENCHMARK(BM_Http1Parse)
    ->ArgNames({"body", "chunked"})
    ->Args({0, 0})
    ->Args({1024, 0})
    ->Args({16384, 0})
    ->Args({16384, 1})
    ->Args({262144, 0});

// The pure head parser alone (no records): the floor under BM_Http1Parse.
void BM_Http1HeadParser(benchmark::State& state) {
  const std::string req = Request(12345), resp = Response(0, false);
  sonde::protocols::http1::MessageHead head;
  size_t fields = 0;
  for (auto _ : state) {
    sonde::protocols::http1::ParseRequestHead(req, &head);
    fields += head.headers.size();
    sonde::protocols::http1::ParseResponseHead(resp, &head);
    fields += head.headers.size();
    benchmark::DoNotOptimize(head);
  }
  benchmark::DoNotOptimize(fields);
  state.SetBytesProcessed(static_cast<int64_t>((req.size() + resp.size()) * state.iterations()));
  state.counters["heads/s"] = benchmark::Counter(2.0 * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Http1HeadParser);

// Whole pipeline: raw events -> tracker -> http1 -> spans -> linker ->
// exchange joiner -> RED (no JSON printing), gateway-shaped traffic.
// join: 0 joiner off; 1 on (the gateway's clients are not captured: its
// server spans wait and time out); 2 on, and each downstream client is a
// captured process (curl-like) whose span the gateway's server span joins.
void BM_PipelineEndToEnd(benchmark::State& state) {
  using sonde::testing::Endpoints;
  using sonde::testing::SocketSim;
  const size_t body = static_cast<size_t>(state.range(0));
  const int join = static_cast<int>(state.range(1));
  constexpr int kRequests = 2000;
  std::vector<std::vector<uint8_t>> events;
  SocketSim up(300, 300, "nginx", 5000, 50, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 50000, "127.0.0.1", 9000});
  std::vector<SocketSim> downs;
  for (int c = 0; c < 32; ++c) {
    downs.emplace_back(300, 300, "nginx", 100 + c, 10 + c, SONDE_ROLE_SERVER,
                       Endpoints{"127.0.0.1", 8080, "127.0.0.1", static_cast<uint16_t>(40000 + c)});
  }
  std::vector<SocketSim> clients;
  for (int c = 0; c < 32; ++c) {
    clients.emplace_back(400, 400, "curl", 200 + c, 3, SONDE_ROLE_CLIENT,
                         Endpoints{"127.0.0.1", static_cast<uint16_t>(40000 + c), "127.0.0.1", 8080});
    // Both ends number the same bytes: the client's egress = the server's ingress.
    clients.back().SkipSeq(SONDE_DIR_EGRESS, 4'000'000);
    clients.back().SkipSeq(SONDE_DIR_INGRESS, static_cast<uint32_t>(1'000'000 - 5'000'000));
  }
  uint64_t t = 1'000'000;
  const std::string resp = Response(body, false);
  const std::string captured = resp.substr(0, 4096);
  for (int i = 0; i < kRequests; ++i) {
    SocketSim& down = downs[i % downs.size()];
    SocketSim& client = clients[i % clients.size()];
    std::string req = Request(i);
    if (join == 2) events.push_back(client.Write(req, t - 1000));
    events.push_back(down.Read(req, t));
    events.push_back(up.Write(req, t + 2000));
    events.push_back(up.Data(SONDE_DIR_INGRESS, captured, t + 50'000, t + 51'000, resp.size()));
    events.push_back(down.Data(SONDE_DIR_EGRESS, captured, t + 60'000, t + 61'000, resp.size()));
    if (join == 2) events.push_back(client.Data(SONDE_DIR_INGRESS, captured, t + 62'000, t + 63'000, resp.size()));
    t += 100'000;
  }
  uint64_t bytes = 0;
  for (const auto& e : events) bytes += e.size();
  uint64_t spans = 0;
  for (auto _ : state) {
    sonde::pipeline::PipelineOptions o;
    o.print_json = false;
    o.clock_offset_ns = 0;
    o.joiner.enabled = join != 0;
    sonde::pipeline::Agent agent(o);
    for (const auto& e : events) agent.OnEvent(e);
    agent.Finish();
    spans += agent.counters().spans;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(spans), benchmark::Counter::kIsRate);
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(events.size() * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["requests/s"] = benchmark::Counter(static_cast<double>(kRequests * state.iterations()),
                                                    benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PipelineEndToEnd)->ArgNames({"body", "join"})
    ->Args({0, 0})->Args({0, 1})->Args({0, 2})->Args({16384, 0})->Args({16384, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
