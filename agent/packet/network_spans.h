#pragma once
// Network spans: reassembles each TCP flow's payload in sequence order and
// runs the same protocol sessions as the syscall path (agent/protocols) over
// it. Every exchange becomes a trace::Span with SpanSource::kNetwork carrying
// the TCP sequence numbers of its first request and response bytes, which is
// what joins it to the system span of the same exchange.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/packet/flow_table.h"
#include "agent/protocols/protocol.h"
#include "agent/trace/span.h"

namespace sonde::packet {

struct NetworkSpanOptions {
  size_t max_buffered_bytes = 1 << 20;   // per direction, unconsumed + out-of-order
  size_t max_pending_segments = 256;     // out-of-order segments held per direction
  size_t max_inference_bytes = 4096;     // give up on a flow no protocol claims by then
};

struct NetworkSpanCounters {
  uint64_t flows_with_protocol = 0;
  uint64_t flows_unrecognised = 0;
  uint64_t gaps = 0;           // bytes never seen (loss before capture, snaplen, overflow)
  uint64_t spans = 0;
  uint64_t out_of_order_segments = 0;
};

class NetworkSpanBuilder : public PayloadSink {
 public:
  using SpanCallback = std::function<void(trace::Span&&)>;
  explicit NetworkSpanBuilder(SpanCallback on_span, NetworkSpanOptions options = {})
      : on_span_(std::move(on_span)), options_(options) {}

  void OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                 std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) override;
  void OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t now_ns) override;

  const NetworkSpanCounters& counters() const { return counters_; }

 private:
  struct Stream {
    bool init = false;
    uint32_t next_seq = 0;             // sequence of the byte after `buf`
    std::string buf;                   // contiguous, not yet consumed by the session
    std::vector<protocols::ChunkInfo> chunks;
    std::map<uint32_t, std::pair<std::string, uint64_t>> pending;  // seq -> (bytes, ts)
    size_t pending_bytes = 0;
  };
  struct FlowL7 {
    Stream dir[2];  // 0: client -> server, 1: server -> client
    std::unique_ptr<protocols::ProtocolSession> session;
    const protocols::ProtocolDefinition* protocol = nullptr;
    bool unrecognised = false;
  };

  void Append(Stream& s, const uint8_t* data, size_t n, uint32_t seq, uint64_t ts);
  void Gap(FlowL7& f, int d, uint64_t bytes);
  void Feed(FlowL7& f, const FlowStats& flow, int d, bool closed, uint64_t now_ns);
  void Infer(FlowL7& f, const FlowStats& flow);
  void Emit(FlowL7& f, const FlowStats& flow, uint64_t now_ns, bool closing);

  SpanCallback on_span_;
  NetworkSpanOptions options_;
  std::unordered_map<uint64_t, FlowL7> flows_;
  NetworkSpanCounters counters_;
};

// Builds the span of one exchange seen on the wire (exposed for tests).
trace::Span SpanFromRecord(const protocols::L7Record& record, const FlowStats& flow);

}  // namespace sonde::packet
