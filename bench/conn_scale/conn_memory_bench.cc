// Heap bytes per tracked connection in user space (ConnectionTracker and the
// whole pipeline), measured with jemalloc's own accounting
// (stats.allocated), for connections left idle after:
//   open     connect/accept seen, no bytes yet
//   http1    one HTTP/1.1 request/response exchanged (keep-alive)
//   http2    h2c preface, SETTINGS, one request/response (HPACK tables used)
//   redis    one PING/PONG
//   closed   one HTTP/1.1 exchange, then the socket closed (must be ~0)
// once idle (quiet for longer than the tracker's quiet_after_ns) and once
// busy (measured right after the exchange).
//   conn_memory_bench [connections=20000]
// Target (issue #22): an idle tracked connection costs <= ~1 KiB.
#include <jemalloc/jemalloc.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "agent/conn/connection.h"
#include "agent/conn/tracker.h"
#include "agent/protocols/http1/stitcher.h"
#include "agent/protocols/http2/session.h"
#include "agent/protocols/redis/session.h"
#include "agent/pipeline/pipeline.h"
#include "tests/unit/conn/event_builder.h"

namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;

size_t HeapAllocated() {
  uint64_t epoch = 1;
  size_t sz = sizeof(epoch);
  mallctl("epoch", &epoch, &sz, &epoch, sz);
  size_t allocated = 0;
  sz = sizeof(allocated);
  if (mallctl("stats.allocated", &allocated, &sz, nullptr, 0) != 0) return 0;
  return allocated;
}

std::string H2Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(payload.size() >> 16));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(payload.size()));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>(stream >> 24));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  return f + payload;
}

// HPACK literal with incremental indexing, new name (0x40): enters the dynamic table.
std::string Literal(const std::string& name, const std::string& value) {
  std::string s(1, '\x40');
  s.push_back(static_cast<char>(name.size()));
  s += name;
  s.push_back(static_cast<char>(value.size()));
  s += value;
  return s;
}

using Feed = std::function<void(const std::vector<uint8_t>&)>;

// One connection's life up to the idle point. `i` keeps sockets distinct.
void Drive(const std::string& scenario, uint32_t i, const Feed& feed) {
  // Calls 10 us apart (SocketSim calls last 1 us): requests precede their responses.
  const uint64_t ts = 1'000'000'000ull + i * 100'000ull;
  Endpoints e{"10.0.0.1", static_cast<uint16_t>(8080), "10.1.0.1", static_cast<uint16_t>(1024 + i % 60000)};
  e.remote_ip = i < 60000 ? "10.1.0.1" : "10.1.0.2";
  SocketSim s(1000 + i / 10000, 1000, "server", 1'000'000 + i, static_cast<int32_t>(i % 10000 + 10),
              SONDE_ROLE_SERVER, e);
  feed(s.Open(ts));
  if (scenario == "open") return;
  if (scenario == "http1" || scenario == "closed") {
    feed(s.Read("GET /api/v1/items?id=" + std::to_string(i) + " HTTP/1.1\r\nHost: api\r\nUser-Agent: wrk\r\n\r\n",
                ts + 10'000));
    feed(s.Write("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\nok", ts + 20'000));
    if (scenario == "closed") feed(s.CloseEv(ts + 30'000));
    return;
  }
  if (scenario == "http2") {
    std::string settings = H2Frame(4, 0, 0, "");
    feed(s.Read("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings, ts + 10'000));
    feed(s.Write(settings + H2Frame(4, 1, 0, ""), ts + 20'000));
    std::string req_block = std::string("\x82\x86\x84", 3) + Literal(":authority", "api.example.com") +
                            Literal("user-agent", "grpc-go/1.60") + Literal("x-request-id", std::to_string(i));
    feed(s.Read(H2Frame(1, 5, 1, req_block), ts + 30'000));
    std::string resp_block = std::string("\x88", 1) + Literal("content-type", "application/json") +
                             Literal("server", "envoy");
    feed(s.Write(H2Frame(1, 4, 1, resp_block) + H2Frame(0, 1, 1, "ok"), ts + 40'000));
    return;
  }
  if (scenario == "redis") {
    feed(s.Read("*1\r\n$4\r\nPING\r\n", ts + 10'000));
    feed(s.Write("+PONG\r\n", ts + 20'000));
  }
}

template <typename Setup>
double Measure(const std::string& scenario, uint32_t n, bool settle_first, Setup&& setup, size_t* tracked) {
  const size_t before = HeapAllocated();
  auto run = setup();
  for (uint32_t i = 0; i < n; ++i) Drive(scenario, i, run->feed);
  if (settle_first) run->settle();
  *tracked = run->open();
  const size_t after = HeapAllocated();
  return (static_cast<double>(after) - static_cast<double>(before)) / n;
}

struct TrackerRun {
  sonde::conn::ConnectionTracker tracker;
  std::vector<sonde::conn::ConnRecord> out;
  Feed feed = [this](const std::vector<uint8_t>& ev) {
    tracker.OnEvent(ev, out);
    out.clear();
  };
  std::function<void()> settle = [this] { tracker.Tick(10'000'000'000ull, out); out.clear(); };
  std::function<size_t()> open = [this] { return tracker.open_connections(); };
};

struct AgentRun {
  sonde::pipeline::Agent agent{[] {
    sonde::pipeline::PipelineOptions o;
    o.print_json = false;
    o.clock_offset_ns = 0;
    o.event_time = true;
    return o;
  }()};
  Feed feed = [this](const std::vector<uint8_t>& ev) { agent.OnEvent(ev); };
  std::function<void()> settle = [this] { agent.Tick(10'000'000'000ull); };
  std::function<size_t()> open = [this] { return static_cast<size_t>(agent.counters().open_connections); };
};

}  // namespace

int main(int argc, char** argv) {
  const uint32_t n = argc > 1 ? static_cast<uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 20000;
  std::printf("heap bytes per connection (jemalloc stats.allocated), %u connections\n", n);
  std::printf("object sizes: Connection %zu, DataStream %zu, Http1Session %zu, Http2Session %zu, RedisSession %zu\n",
              sizeof(sonde::conn::Connection), sizeof(sonde::conn::DataStream),
              sizeof(sonde::protocols::http1::Http1Session), sizeof(sonde::protocols::http2::Http2Session),
              sizeof(sonde::protocols::redis::RedisSession));
  std::printf("%-8s %14s %12s %14s %12s\n", "scenario", "tracker B/conn", "tracked", "pipeline B/conn", "tracked");
  for (bool idle : {true, false}) {
    std::printf("%s\n", idle ? "-- idle (quiet for > 1 s: buffers given back)" : "-- busy (just exchanged, not yet quiet)");
    for (const char* scenario : {"open", "http1", "http2", "redis", "closed"}) {
      size_t tracked_t = 0, tracked_p = 0;
      double tracker = Measure(scenario, n, idle, [] { return std::make_unique<TrackerRun>(); }, &tracked_t);
      double pipeline = Measure(scenario, n, idle, [] { return std::make_unique<AgentRun>(); }, &tracked_p);
      std::printf("%-8s %14.0f %12zu %14.0f %12zu\n", scenario, tracker, tracked_t, pipeline, tracked_p);
    }
  }
  return 0;
}
