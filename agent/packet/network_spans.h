#pragma once
// Transitional, for bench/tcp/flow_path_bench.cc only (owned elsewhere), which
// still drives the packet path as "NetworkSpanBuilder" with a span callback.
// Network spans are no longer built in agent/packet: FlowConnFeed hands
// conn::ConnRecords to pipeline::Agent::EmitRecord, which builds, redacts and
// completes them. This adapter gives the bench one bare span per record
// (source N and the TCP sequence numbers, nothing else). Delete it once the
// bench uses FlowConnFeed.
#include <functional>
#include <utility>

#include "agent/packet/flow_conn_feed.h"
#include "agent/trace/span.h"

namespace sonde::packet {

class NetworkSpanBuilder final : public PayloadSink {
 public:
  using SpanCallback = std::function<void(trace::Span&&)>;
  explicit NetworkSpanBuilder(SpanCallback on_span)
      : feed_(
            [on_span = std::move(on_span)](conn::ConnRecord&& r) {
              trace::Span s;
              s.source = trace::SpanSource::kNetwork;
              s.request_seq_valid = r.record.request.first_tcp_seq.has_value();
              s.request_tcp_seq = r.record.request.first_tcp_seq.value_or(0);
              s.response_seq_valid = r.record.response.first_tcp_seq.has_value();
              s.response_tcp_seq = r.record.response.first_tcp_seq.value_or(0);
              if (on_span) on_span(std::move(s));
            },
            clock_) {}

  void OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                 std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) override {
    feed_.OnPayload(flow_id, flow, to_server, seq, payload, wire_len, ts_ns);
  }
  void OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t now_ns) override {
    feed_.OnFlowEnd(flow_id, flow, now_ns);
  }

 private:
  core::MonotonicToRealtime clock_;
  FlowConnFeed feed_;
};

}  // namespace sonde::packet
