#pragma once
// One tracked socket: two ordered streams, the inferred protocol and its
// session. Internal to the tracker (agent/conn/tracker.h).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "agent/conn/conn_record.h"
#include "agent/conn/data_stream.h"
#include "agent/conn/session_pool.h"
#include "agent/protocols/protocol.h"

namespace sonde::conn {

struct TrackerOptions;

// to += from, field by field.
void AddProtocolCounters(protocols::ProtocolCounters& to, const protocols::ProtocolCounters& from);

// What every connection of a tracker uses, kept once (not per connection).
struct ConnShared {
  explicit ConnShared(const TrackerOptions& o);
  const TrackerOptions& options;
  StreamShared streams;
  SessionPool sessions;
  // Counters of sessions parked or dropped (a live connection's session
  // counts only what it saw since it was taken).
  protocols::ProtocolCounters retired;
};

class Connection final : public StreamConsumer {
 public:
  Connection(ConnContext ctx, bool late_join, ConnShared* shared);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void AddData(protocols::Direction dir, const DataChunk& chunk);
  void FlushExpired(uint64_t now_ns);
  // Both directions ended: deliver what is left and flush the session.
  void Close();
  // `scratch` is the tracker's (one buffer for all connections, not one each).
  // A session left quiescent by the records taken is parked in the shared
  // pool (protocols that can renew theirs).
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<protocols::L7Record>& scratch,
                   std::vector<ConnRecord>& out);
  // Quiet for a while: streams and session give back reuse capacity; a
  // quiescent session (nothing in flight) is dropped altogether, its
  // counters added to the shared `retired`, and made afresh on the next bytes.
  void ReleaseIdleMemory();

  size_t OnBytes(protocols::Direction dir, const protocols::StreamView& view) override;
  void OnGap(protocols::Direction dir, uint64_t bytes) override;

  ConnContext& context() { return ctx_; }
  const ConnContext& context() const { return ctx_; }
  protocols::L7Protocol protocol() const { return protocol_; }
  bool gave_up() const { return gave_up_; }
  uint64_t last_activity_ns() const { return last_activity_ns_; }
  // An event without bytes (connect/accept) still counts as activity: the
  // idle timeout runs from the connection's last sign of life.
  void Touch(uint64_t ns) { last_activity_ns_ = std::max(last_activity_ns_, ns); }
  // The kernel reported the socket closed (state change) at `ns` while the
  // fd may still be open; 0 when not.
  uint64_t close_pending_since_ns() const { return close_pending_since_ns_; }
  void MarkClosePending(uint64_t ns) {
    if (close_pending_since_ns_ == 0) close_pending_since_ns_ = ns;
  }
  // Chunks wait in either direction for a hole to fill (reorder window).
  bool has_waiting() const { return egress_.has_waiting() || ingress_.has_waiting(); }
  const protocols::ProtocolCounters* protocol_counters() const {
    return session_ ? &session_->counters() : nullptr;
  }

  // Tracker bookkeeping (tracker.cc): in the active list (ticked every
  // time) or quiet (visited by the periodic sweep only); when the socket's
  // existence was last checked against the kernel.
  bool active = false;
  bool close_listed = false;
  bool reorder_listed = false;
  uint64_t checked_ns = 0;

 private:
  // Parks a quiescent session (or drops it when `drop` and it cannot be
  // parked); false when the session is not quiescent.
  bool RetireSession(bool drop);
  // Idle with state later bytes need (HTTP/2): keep it frozen (FrozenSession).
  bool FreezeSession();
  // The next bytes or gap: the frozen session rebuilt (a fresh late-joined
  // one if its bytes do not thaw).
  void ThawSession();
  const protocols::ProtocolDefinition* Definition() const;

  ConnContext ctx_;
  bool late_join_;
  ConnShared* shared_;
  DataStream egress_;
  DataStream ingress_;
  std::unique_ptr<protocols::ProtocolSession> session_;
  protocols::L7Protocol protocol_ = protocols::L7Protocol::kUnknown;
  bool gave_up_ = false;
  bool frozen_ = false;  // session_ is a FrozenSession
  uint32_t infer_calls_ = 0;
  uint64_t last_activity_ns_ = 0;
  uint64_t close_pending_since_ns_ = 0;
};

}  // namespace sonde::conn
