#pragma once
// Exchange joiner: when the agent sees both ends of one exchange on this node
// (a client S span and the server S span answering it, in any processes or
// network namespaces), the server side joins the client's trace: same trace
// id, parent = the client span. No header is needed: both ends saw the same
// request bytes, so the TCP sequence number of the first request byte is
// equal on both sides (the client's write_seq, the server's copied_seq), and
// the client endpoint is the same (DNAT rewrites only the server side).
// Without a sequence number, the client endpoint plus time nesting (the
// server span inside the client span) is the evidence.
//
// Sits after the GatewayLinker, which emits groups (an ingress with its linked
// egress spans, or a released span). A group whose root is a server span
// waits here for its client span; a client span is indexed as soon as it is
// built (Observe), before the linker holds it, so the server group attaches
// to it at once and leaves with it. A joined trace is therefore delivered
// as one group: the span budget keeps or drops it whole.
//
// Per request: a few flat-hash-map operations on fixed-size keys, no strings.
// Bounded: held groups and indexed clients have deadlines and maximum counts;
// everything released early is counted.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "agent/trace/span.h"

namespace sonde::trace {

struct JoinerOptions {
  bool enabled = true;
  // How long a server group waits for its client span (from the server
  // span's end). Records reach the pipeline out of order by up to a tick or
  // two of the tracker's reordering; 500 ms covers it.
  uint64_t hold_ns = 500'000'000;
  // How long a client span stays findable by a late server span.
  uint64_t client_ttl_ns = 500'000'000;
  size_t max_held_groups = 50'000;  // waiting + attached server groups
  size_t max_clients = 200'000;     // indexed client spans
  size_t max_node_addresses = 4096;  // addresses seen as a local end on this node
  uint64_t nesting_slack_ns = 0;    // clock tolerance for the no-sequence evidence
};

struct JoinerCounters {
  uint64_t links_tcp_sequence = 0;  // server spans joined by request sequence number
  uint64_t links_time_nesting = 0;  // joined by client endpoint + nested times (no sequence)
  uint64_t late_links = 0;          // of those: the client span had already left
  uint64_t timeouts = 0;            // server groups released without their client
  uint64_t evicted = 0;             // released early at max_held_groups / max_clients
  uint64_t replaced = 0;            // a waiting group displaced by one with the same key
  uint64_t not_held = 0;            // server groups from peers not on this node: not held
};

class ExchangeJoiner {
 public:
  // A group of spans that leaves together (one sampling decision).
  using Deliver = std::function<void(SpanGroup&)>;
  explicit ExchangeJoiner(JoinerOptions options = {}) : options_(options) {}

  // Every system span as it is built (before the linker): client spans become
  // findable, and server groups already waiting attach to them.
  void Observe(const Span& span);
  // A group the linker emitted. Delivered now (the group is consumed and
  // cleared), or held until its client span leaves the linker. Groups held
  // under a client span of `group` are appended to it.
  void Add(SpanGroup& group, const Deliver& deliver);
  // Releases server groups whose client did not come in time.
  void Flush(uint64_t now_unix_ns, const Deliver& deliver);
  void FlushAll(const Deliver& deliver);

  const JoinerCounters& counters() const { return counters_; }
  size_t held_groups() const { return held_groups_; }
  size_t indexed_clients() const { return clients_.size(); }

  // The exchange's identity as both ends see it: the client endpoint
  // (IPv4 as v4-mapped IPv6) and the request's first TCP sequence number.
  struct Key {
    std::array<uint8_t, 16> client_addr{};
    uint16_t client_port = 0;
    bool seq_valid = false;
    uint32_t seq = 0;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.client_addr, k.client_port, k.seq_valid, k.seq);
    }
  };

 private:
  struct Client {
    SpanId span_id{};
    TraceId trace_id{};  // final once `left` (the linker may change it before)
    uint64_t start_ns = 0, end_ns = 0;
    bool left = false;   // emitted by the linker
  };
  struct Waiting {
    SpanGroup group;
    uint64_t deadline_ns = 0;
  };
  struct Expiry {
    Key key;
    uint64_t id;  // span id (clients) or deadline (waiting groups): identifies the entry
    uint64_t at_ns;
  };

  bool Candidate(const Span& server) const;
  bool OnNode(const Span& server) const;
  bool Matches(const Client& c, const Span& server) const;
  void Attach(const SpanId& client, SpanGroup& group, LinkReason reason);
  void Retrace(SpanGroup& group, const TraceId& trace);
  void Learn(const Span& span);

  JoinerOptions options_;
  JoinerCounters counters_;
  absl::flat_hash_map<Key, Client> clients_;
  absl::flat_hash_map<Key, Waiting> waiting_;
  // Server groups whose client span is inside the linker, by client span id.
  absl::flat_hash_map<uint64_t, std::vector<SpanGroup>> attached_;
  absl::flat_hash_set<std::array<uint8_t, 16>> node_addresses_;
  std::deque<Expiry> client_expiry_;   // insertion order = expiry order
  std::deque<Expiry> waiting_expiry_;
  size_t held_groups_ = 0;
};

// The exchange key of a system span (client or server side); false when the
// span has no tuple (complete spans, other sources).
bool ExchangeKeyOf(const Span& span, ExchangeJoiner::Key* key);

}  // namespace sonde::trace
