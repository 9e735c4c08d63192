// `--workers N`: connection tracking, parsing and span building sharded over
// threads must give the same spans, traces and RED as one thread.
#include "agent/pipeline/capture_shards.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "agent/pipeline/pipeline.h"
#include "agent/trace/trace_headers.h"
#include "tests/testlib/collect_sink.h"
#include "tests/unit/conn/event_builder.h"
#include "tests/unit/pipeline/memory_source.h"

namespace sonde::pipeline {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::MemorySource;
using sonde::testing::SocketSim;

// A client (pid 100) calls a gateway (pid 300) on a new connection per
// request; the gateway proxies each request over one keep-alive upstream
// connection. Every request is one trace of three spans: client, gateway
// ingress (joined by TCP sequence), gateway egress (linked by nesting). The
// client and ingress sockets of one request hash to different workers.
std::vector<std::vector<uint8_t>> ThreeTierEvents(int n) {
  std::vector<std::vector<uint8_t>> ev;
  SocketSim up(300, 300, "nginx", 5000, 50, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 50000, "127.0.0.1", 9000});
  ev.push_back(up.Open(1));
  uint64_t t = 1'000'000;
  for (int i = 0; i < n; ++i) {
    const auto port = static_cast<uint16_t>(40000 + i);
    SocketSim client(100, 100, "curl", 20'000 + i, 3, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", port, "127.0.0.1", 8080});
    SocketSim ingress(300, 300, "nginx", 30'000 + i, 100 + i, SONDE_ROLE_SERVER,
                      Endpoints{"127.0.0.1", 8080, "127.0.0.1", port});
    // The bytes the client sends are the bytes the gateway reads: same sequence.
    ingress.SkipSeq(SONDE_DIR_INGRESS, 1'000'000u - 5'000'000u);
    ingress.SkipSeq(SONDE_DIR_EGRESS, 5'000'000u - 1'000'000u);
    const std::string path = "/item/" + std::to_string(i);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: gw\r\n\r\n";
    const int status = i % 10 == 0 ? 502 : 200;
    const std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 3\r\n\r\nabc";
    ev.push_back(client.Open(t));
    ev.push_back(ingress.Open(t + 50));
    ev.push_back(client.Write(req, t + 100));
    ev.push_back(ingress.Read(req, t + 200));
    ev.push_back(up.Write("GET " + path + " HTTP/1.1\r\nHost: backend\r\n\r\n", t + 2000));
    ev.push_back(up.Read(resp, t + 50'000));
    ev.push_back(ingress.Write(resp, t + 60'000));
    ev.push_back(client.Read(resp, t + 61'000));
    ev.push_back(ingress.CloseEv(t + 70'000));
    ev.push_back(client.CloseEv(t + 71'000));
    t += 20'000;  // requests overlap: several in flight at once
  }
  return ev;
}

struct Outcome {
  std::map<size_t, int> trace_sizes;  // spans per trace -> traces
  uint64_t spans = 0, red_server = 0, red_client = 0, red_errors = 0, records = 0, open = 1;
  int egress_linked_to_same_path = 0;
};

Outcome RunWith(size_t workers, int requests) {
  MemorySource source(ThreeTierEvents(requests), /*batch=*/64);
  PipelineOptions o;
  o.print_json = false;
  o.clock_offset_ns = 1'700'000'000'000'000'000ull;
  o.event_time = true;
  o.sampler.spans_per_second = 0;  // every span: compare them all
  o.workers = workers;
  Agent agent(o);
  auto sink = std::make_shared<testlib::CollectSink>();
  agent.AddSink(sink);
  std::atomic<bool> stop{false};
  EXPECT_TRUE(agent.Run(source, stop).ok());

  Outcome out;
  std::map<std::string, std::vector<const trace::Span*>> traces;
  std::map<trace::SpanId, const trace::Span*> by_id;
  for (const auto& s : sink->spans) {
    traces[trace::ToHex(s.trace_id)].push_back(&s);
    by_id[s.span_id] = &s;
  }
  for (const auto& [id, spans] : traces) ++out.trace_sizes[spans.size()];
  for (const auto& s : sink->spans) {
    if (s.kind != trace::SpanKind::kClient || s.pid != 300) continue;
    auto parent = by_id.find(s.parent_span_id);
    if (parent != by_id.end() && parent->second->kind == trace::SpanKind::kServer &&
        parent->second->url_path == s.url_path) {
      ++out.egress_linked_to_same_path;
    }
  }
  out.spans = sink->spans.size();
  for (const auto& [key, series] : agent.red().Totals()) {
    (key.kind == "server" ? out.red_server : out.red_client) += series.count;
    out.red_errors += series.errors;
  }
  const AgentCounters c = agent.counters();
  out.records = c.tracker.records;
  out.open = c.open_connections;
  return out;
}

TEST(CaptureShardsPipeline, SameTracesSpansAndRedAsOneThread) {
  constexpr int kRequests = 600;
  const Outcome one = RunWith(1, kRequests);
  // One thread: every request is one trace of client, ingress and egress.
  EXPECT_EQ(one.trace_sizes, (std::map<size_t, int>{{3, kRequests}}));
  EXPECT_EQ(one.egress_linked_to_same_path, kRequests);
  for (size_t workers : {2u, 3u, 5u}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    const Outcome many = RunWith(workers, kRequests);
    EXPECT_EQ(many.trace_sizes, one.trace_sizes);
    EXPECT_EQ(many.egress_linked_to_same_path, kRequests);
    EXPECT_EQ(many.spans, one.spans);
    EXPECT_EQ(many.red_server, static_cast<uint64_t>(kRequests));
    EXPECT_EQ(many.red_client, 2u * kRequests);
    EXPECT_EQ(many.red_errors, one.red_errors);
    EXPECT_EQ(many.records, 3u * kRequests) << "tracker counters summed over workers";
    EXPECT_EQ(many.open, 0u) << "every worker's connections closed";
  }
}

TEST(CaptureShards, RoutesBySocketAndCountsWhatItCannotRoute) {
  core::MonotonicToRealtime clock;
  CaptureShardOptions options;
  options.workers = 4;
  options.event_time = true;
  CaptureShards shards(options, clock, {});
  const uint8_t garbage[3] = {1, 2, 3};
  shards.Dispatch(capture::RawEvent(garbage, sizeof garbage));
  EXPECT_EQ(shards.malformed(), 1u);

  // 64 connections, one request each, all events of a socket on one worker:
  // every request pairs, whichever worker holds it.
  for (int i = 0; i < 64; ++i) {
    SocketSim s(300, 300, "nginx", 70'000 + i, 10 + i, SONDE_ROLE_SERVER,
                Endpoints{"127.0.0.1", 8080, "127.0.0.1", static_cast<uint16_t>(41000 + i)});
    const uint64_t t = 1'000'000 + i * 1000;
    for (const auto& e : {s.Open(t), s.Read("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", t + 10),
                          s.Write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t + 20)}) {
      shards.Dispatch(capture::RawEvent(e.data(), e.size()));
    }
  }
  shards.Flush();
  shards.Finish();
  std::vector<std::deque<trace::SpanPtr>> spans;
  shards.TakeSpans(spans);
  ASSERT_EQ(spans.size(), 4u);  // one queue per worker
  size_t total = 0, busy_workers = 0;
  for (const auto& q : spans) {
    total += q.size();
    busy_workers += q.empty() ? 0 : 1;
  }
  EXPECT_EQ(total, 64u);
  EXPECT_GE(busy_workers, 2u) << "64 sockets spread over the workers";
  EXPECT_EQ(shards.counters().records, 64u);
  EXPECT_EQ(shards.counters().connections_opened, 64u);
  EXPECT_EQ(shards.open_connections(), 0u);
  EXPECT_EQ(shards.ProgressEventNs(), shards.latest_dispatched_ns());
}

}  // namespace
}  // namespace sonde::pipeline
