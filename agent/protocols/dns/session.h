#pragma once
// DNS ProtocolSession, over UDP (one call = one datagram, each with its own
// peer: an unconnected socket talks to many) or TCP (two-byte length
// prefixes, several queries in flight). Queries wait for the response with
// the same id from the same peer (and the same question); one that gets none
// within kQueryTimeoutNs ends as a record without response (a DNS timeout).
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "agent/protocols/dns/message.h"
#include "agent/protocols/protocol.h"

namespace sonde::protocols::dns {

enum class Transport : uint8_t { kUdp, kTcp };

class DnsSession final : public ProtocolSession {
 public:
  static constexpr size_t kMaxPending = 1024;                   // queries awaiting a response
  static constexpr uint64_t kQueryTimeoutNs = 5'000'000'000ull;  // glibc's default resolver timeout
  static constexpr size_t kMaxTcpMessage = 65535;

  DnsSession(Role role, bool late_join, Transport transport);

  size_t OnBytes(Direction dir, const StreamView& view) override;
  void OnGap(Direction dir, uint64_t bytes) override;
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) override;
  const ProtocolCounters& counters() const override { return counters_; }
  void ReleaseIdleMemory() override;

 private:
  struct Query {
    Message message;
    L7Message wire;
    PeerAddress peer;
  };
  using Key = std::tuple<uint16_t, uint16_t, uint16_t, std::array<uint8_t, 16>>;  // id, port, family, address

  bool IsQueryDir(Direction dir) const;
  void OnMessage(Direction dir, std::string_view bytes, uint64_t wire_bytes, const ChunkInfo& first,
                 const ChunkInfo& last);
  void Emit(Query&& query, const Message* response, const L7Message* response_wire);
  size_t FindTcpResync(const StreamView& view, size_t pos) const;

  Role role_;
  Transport transport_;
  bool resync_[2] = {false, false};  // TCP: per direction, looking for a frame start
  std::map<Key, Query> pending_;
  std::vector<L7Record> ready_;
  ProtocolCounters counters_;
};

}  // namespace sonde::protocols::dns
