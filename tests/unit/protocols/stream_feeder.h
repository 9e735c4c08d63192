#pragma once
// Plays the connection tracker for one protocol session in unit tests: keeps
// the bytes the session did not consume per direction and presents them again
// with the next call's bytes, with one ChunkInfo per call (timing, TCP
// sequence, thread) rebased onto what is left. Shared by every protocol's
// session tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/protocols/protocol.h"

namespace sonde::testing {

template <typename Session>
class StreamFeeder {
 public:
  // Every protocol session is made from the socket's role and whether the
  // connection was joined mid-way (ProtocolDefinition::make_session).
  explicit StreamFeeder(protocols::Role role, bool late_join = false) : session_(role, late_join) {}

  // One captured call of `dir` carrying `bytes` (entry `ts`, exit `ts + 1`).
  void Send(protocols::Direction dir, std::string_view bytes, uint64_t ts, bool closed = false) {
    Pending& p = Of(dir);
    protocols::ChunkInfo c;
    c.offset = p.bytes.size();
    c.ts_enter_ns = ts;
    c.ts_exit_ns = ts + 1;
    c.tcp_seq = p.seq;
    c.thread_id = 7;
    p.seq += static_cast<uint32_t>(bytes.size());
    p.chunks.push_back(c);
    p.bytes.append(bytes);
    Drain(dir, closed);
  }
  // `n` bytes of `dir` were not captured; the unconsumed bytes before them are lost with them.
  void Gap(protocols::Direction dir, uint64_t n) {
    Pending& p = Of(dir);
    session_.OnGap(dir, n == protocols::kUnknownGapBytes ? n : n + p.bytes.size());
    p.bytes.clear();
    p.chunks.clear();
    p.seq += static_cast<uint32_t>(n);
  }
  std::vector<protocols::L7Record> Take(bool closing = false) {
    std::vector<protocols::L7Record> out;
    session_.TakeRecords(0, closing, out);
    return out;
  }
  Session& session() { return session_; }

 private:
  struct Pending {
    std::string bytes;
    std::vector<protocols::ChunkInfo> chunks;
    uint32_t seq = 1000;
  };
  Pending& Of(protocols::Direction dir) { return dir == protocols::Direction::kEgress ? egress_ : ingress_; }

  void Drain(protocols::Direction dir, bool closed) {
    Pending& p = Of(dir);
    protocols::StreamView view;
    view.bytes = p.bytes;
    view.chunks = p.chunks;
    view.connection_closed = closed;
    const size_t used = session_.OnBytes(dir, view);
    ASSERT_LE(used, p.bytes.size()) << "the session consumed more than it was shown";
    const uint64_t total = p.bytes.size();
    p.bytes.erase(0, used);
    std::vector<protocols::ChunkInfo> rest;
    for (size_t i = 0; i < p.chunks.size(); ++i) {
      const uint64_t end = i + 1 < p.chunks.size() ? p.chunks[i + 1].offset : total;
      if (end <= used) continue;
      protocols::ChunkInfo c = p.chunks[i];
      const uint64_t start = std::max<uint64_t>(c.offset, used);
      if (c.tcp_seq) c.tcp_seq = *c.tcp_seq + static_cast<uint32_t>(start - c.offset);
      c.offset = start - used;
      rest.push_back(c);
    }
    p.chunks = std::move(rest);
  }

  Session session_;
  Pending egress_, ingress_;
};

}  // namespace sonde::testing
