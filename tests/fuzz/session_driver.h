#pragma once
// Drives one protocol session the way the connection tracker does, from a
// fuzzer's bytes: a sequence of operations, each `op len payload...`:
//   op % 4 == 0: egress bytes, 1: ingress bytes (len bytes follow),
//   2: a capture gap of len bytes in direction (len & 1), 3: take records.
// Bytes a session does not consume are shown again with the next call's, as
// the tracker does; a session consuming more than it was shown aborts.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/protocol.h"

namespace sonde::fuzz {

template <typename Session>
void DriveSession(const uint8_t* data, size_t size) {
  using protocols::Direction;
  const bool late_join = size > 0 && (data[0] & 1);
  const protocols::Role role = size > 0 && (data[0] & 2) ? protocols::Role::kClient : protocols::Role::kServer;
  Session session(role, late_join);
  std::string pending[2];
  uint64_t ts = 1'000'000;
  std::vector<protocols::L7Record> records;
  size_t i = size > 0 ? 1 : 0;
  while (i + 2 <= size) {
    const uint8_t op = data[i] % 4;
    const size_t len = data[i + 1];
    i += 2;
    if (op <= 1) {
      const Direction dir = op == 0 ? Direction::kEgress : Direction::kIngress;
      std::string& p = pending[op];
      const size_t n = std::min(len, size - i);
      protocols::StreamView view;
      protocols::ChunkInfo c;
      c.ts_enter_ns = ts;
      c.ts_exit_ns = ts + 1;
      view.chunks.push_back(c);
      p.append(reinterpret_cast<const char*>(data + i), n);
      i += n;
      view.bytes = p;
      const size_t used = session.OnBytes(dir, view);
      if (used > p.size()) std::abort();
      p.erase(0, used);
      // The tracker bounds what it keeps unconsumed.
      if (p.size() > (1u << 20)) p.clear();
    } else if (op == 2) {
      const int d = len & 1;
      session.OnGap(d == 0 ? Direction::kEgress : Direction::kIngress, len + pending[d].size());
      pending[d].clear();
    } else {
      session.TakeRecords(ts, false, records);
      records.clear();
    }
    ts += 1000;
  }
  session.TakeRecords(ts, true, records);
}

}  // namespace sonde::fuzz
