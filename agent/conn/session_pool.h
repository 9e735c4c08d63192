#pragma once
// Protocol sessions parked between messages. A keep-alive connection holds a
// session only while a message is in flight: once its session is quiescent
// (nothing queued, in sync, between messages) the connection hands it here
// and takes one back with its next bytes. The pool keeps a few per protocol
// for reuse (ProtocolSession::Renew keeps their buffers' capacity, so the
// per-request path allocates nothing); sessions beyond that are destroyed.
// Memory then follows requests in flight, not connections.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "agent/protocols/protocol.h"

namespace sonde::conn {

class SessionPool {
 public:
  // The bound covers a burst of requests in flight at once (their sessions
  // come back together); Trim() gives back what a whole period did not use.
  explicit SessionPool(size_t max_parked_per_protocol = 8192) : max_parked_(max_parked_per_protocol) {}

  // A session for `def` as def.make_session(role, late_join) would make it:
  // a parked one renewed when there is one.
  std::unique_ptr<protocols::ProtocolSession> Take(const protocols::ProtocolDefinition& def,
                                                   protocols::Role role, bool late_join);
  // Parks a quiescent session whose counters the caller has already added
  // up. False when the protocol cannot renew its sessions (the caller
  // keeps it, or drops it when idle); a full pool destroys it.
  bool Park(protocols::L7Protocol protocol, std::unique_ptr<protocols::ProtocolSession>& session);

  size_t parked() const;
  uint64_t renewed() const { return renewed_; }  // sessions handed out again instead of made
  // Destroys every parked session (their buffers' capacity goes too).
  void Clear();
  // Destroys the parked sessions no connection took since the last Trim
  // (the low-water mark of each protocol's pool): the pool follows the
  // largest recent burst, not the largest ever. Called once per sweep.
  void Trim();

 private:
  static constexpr size_t kSlots = static_cast<size_t>(protocols::kLastL7Protocol) + 1;
  size_t max_parked_;
  std::array<std::vector<std::unique_ptr<protocols::ProtocolSession>>, kSlots> parked_;
  std::array<size_t, kSlots> low_water_{};  // fewest parked since the last Trim
  uint64_t renewed_ = 0;
};

}  // namespace sonde::conn
