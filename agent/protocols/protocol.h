#pragma once
// The one interface every application protocol implements. The connection
// tracker owns ordering, gaps and memory; a protocol owns bytes -> records.
//
// Adding a protocol touches: its L7Protocol value (l7_protocol.h), its folder
// protocols/<p>/ (parser, session, inference, RecordSemantics and the
// ProtocolDefinition that lists them) and one line in registry.cc. Nothing in
// the tracker, the span builder or RED changes.
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/l7_protocol.h"
#include "agent/protocols/record.h"
#include "agent/protocols/semantics.h"

namespace sonde::protocols {

enum class Direction : uint8_t { kEgress = 1, kIngress = 2 };  // as in abi.h
enum class Role : uint8_t { kUnknown = 0, kClient = 1, kServer = 2 };  // as in abi.h

// Where one captured call's bytes sit inside a StreamView.
struct ChunkInfo {
  uint64_t offset = 0;  // offset of the chunk's first byte within the view
  uint64_t ts_enter_ns = 0;
  uint64_t ts_exit_ns = 0;
  std::optional<uint32_t> tcp_seq;  // sequence number of the chunk's first byte
  uint32_t thread_id = 0;
  PeerAddress peer;  // UDP: the datagram's remote end (family 0 when unknown)
};

// Contiguous captured bytes of one direction, starting at the first byte the
// protocol has not consumed yet, plus the timing of every call that carried them.
struct StreamView {
  std::string_view bytes;
  std::vector<ChunkInfo> chunks;  // sorted by offset; chunks[0].offset == 0
  bool connection_closed = false;  // no more bytes will follow in this direction

  // Timing/sequence of the call that carried byte `pos`.
  const ChunkInfo* ChunkAt(uint64_t pos) const {
    const ChunkInfo* found = nullptr;
    for (const auto& c : chunks) {
      if (c.offset > pos) break;
      found = &c;
    }
    return found;
  }
  std::optional<uint32_t> SeqAt(uint64_t pos) const {
    const ChunkInfo* c = ChunkAt(pos);
    if (c == nullptr || !c->tcp_seq) return std::nullopt;
    return static_cast<uint32_t>(*c->tcp_seq + (pos - c->offset));
  }
};

// Unknown gap length (e.g. ring-buffer loss without sequence numbers).
inline constexpr uint64_t kUnknownGapBytes = std::numeric_limits<uint64_t>::max();

struct ProtocolCounters {
  uint64_t parse_errors = 0;     // invalid bytes that forced a resync
  uint64_t resyncs = 0;          // successful resynchronisations
  uint64_t gaps_absorbed = 0;    // gaps that fell inside bodies (no loss of sync)
  uint64_t gaps_desynced = 0;    // gaps that forced a resync
  uint64_t records = 0;          // records emitted
  uint64_t unpaired = 0;         // requests/responses without a partner
  uint64_t late_join = 0;        // records from a connection/stream joined mid-way
};

// Per-connection protocol state: both directions' parsers and the stitcher
// that pairs requests with responses.
class ProtocolSession {
 public:
  virtual ~ProtocolSession() = default;

  // Parse bytes of one direction. Returns how many bytes were consumed; the
  // rest is presented again, with more appended, on the next call.
  virtual size_t OnBytes(Direction dir, const StreamView& view) = 0;

  // The next `bytes` bytes of `dir` were not captured (kUnknownGapBytes when
  // the size is unknown). A parser in the middle of a body may skip them;
  // otherwise it must resync on the following bytes.
  virtual void OnGap(Direction dir, uint64_t bytes) = 0;

  // Move finished records to `out`. `now_ns` lets a stitcher time out
  // requests that never got a response; `closing` flushes everything.
  virtual void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) = 0;

  virtual const ProtocolCounters& counters() const = 0;

  // The connection has gone quiet (no bytes for a while): give back memory
  // kept only for reuse -- empty queues' capacity, scratch and decode
  // buffers -- so an idle connection costs little. State that later bytes
  // depend on (HPACK tables, partial messages) is kept. Called off the
  // per-event path, at most once per quiet period.
  virtual void ReleaseIdleMemory() {}

  // Nothing in flight and nothing later bytes depend on: between messages,
  // in sync, no queued message, no record waiting. Then the connection may
  // drop the session while it is idle and make a fresh one (same role, not
  // late-joined) for the next bytes. `role` receives the session's role
  // (it may have learnt it from the traffic). A session with long-lived
  // state (HPACK tables, a subscription) is never quiescent.
  virtual bool Quiescent(Role* /*role*/) const { return false; }

  // Become what make_session(role, late_join) returns, counters zeroed, but
  // keep the capacity of reusable buffers. Called on a Quiescent session
  // only: the tracker parks quiescent sessions between messages (a busy
  // keep-alive connection holds no session while nothing is in flight) and
  // hands them to the next connection with bytes. False: not supported, the
  // session is destroyed instead.
  virtual bool Renew(Role /*role*/, bool /*late_join*/) { return false; }
  // On a session renewed as Renew(kUnknown, false) and fed nothing since (a
  // parked one): what Renew(role, late_join) would make of it, without
  // resetting everything a second time (once per exchange on keep-alive
  // connections).
  virtual void Reassign(Role role, bool late_join) { Renew(role, late_join); }

  // Quiet, nothing in flight, but holding state later bytes depend on
  // (HTTP/2's HPACK tables): that state as a few bytes, from which the
  // protocol's ProtocolDefinition::thaw rebuilds an equivalent session --
  // an idle connection then keeps those bytes, not the session. Empty when
  // the session cannot be frozen now. Counters are the caller's to keep
  // (protocol-specific debug counters restart).
  virtual std::string Freeze() const { return {}; }
};

// Transports a protocol runs over (ProtocolDefinition::transports bits).
inline constexpr uint8_t kTransportTcp = 1 << 0;
inline constexpr uint8_t kTransportUdp = 1 << 1;  // one captured call = one datagram

// Result of looking at the first bytes of one direction of a new connection.
enum class InferResult : uint8_t { kNo, kMaybeNeedMore, kYes };

struct ProtocolDefinition {
  L7Protocol protocol;
  std::string_view name;
  // Decides from the first captured bytes (and who sent them) whether a
  // connection speaks this protocol. Must be cheap and side-effect free.
  InferResult (*infer)(std::string_view first_bytes, Direction dir, Role role);
  // `late_join`: the connection was not seen from its start.
  std::unique_ptr<ProtocolSession> (*make_session)(Role role, bool late_join);
  // Optional: who is the client, judged from the bytes that made `infer` say
  // yes (a request seen in egress means this process is the client). Used
  // when the socket was joined mid-life and its role is unknown.
  Role (*infer_role)(std::string_view first_bytes, Direction dir) = nullptr;
  // The record kinds its sessions produce and what they mean as spans (an
  // HTTP/2 session yields HTTP/2 and gRPC records).
  std::span<const RecordKind> record_kinds = {};
  // Sockets it is tried on (kTransport* bits): stream protocols are TCP only.
  uint8_t transports = kTransportTcp;
  // Optional: a session rebuilt from ProtocolSession::Freeze's bytes (null
  // when they are not valid).
  std::unique_ptr<ProtocolSession> (*thaw)(std::string_view frozen) = nullptr;
};

}  // namespace sonde::protocols
