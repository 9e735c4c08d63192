#pragma once
// An idle connection's protocol state as the few bytes
// ProtocolSession::Freeze returned (HTTP/2: role, framing limits, HPACK
// tables), held in place of the session until the next bytes make the
// connection thaw it (ProtocolDefinition::thaw). It never parses: the
// connection thaws it first. Its counters are zero (the frozen session's
// were retired into the tracker).
#include <cstring>
#include <memory>
#include <string_view>

#include "agent/protocols/protocol.h"

namespace sonde::conn {

class FrozenSession final : public protocols::ProtocolSession {
 public:
  explicit FrozenSession(std::string_view bytes)
      : size_(bytes.size()), bytes_(std::make_unique_for_overwrite<char[]>(bytes.size())) {
    std::memcpy(bytes_.get(), bytes.data(), bytes.size());
  }

  std::string_view bytes() const { return {bytes_.get(), size_}; }

  size_t OnBytes(protocols::Direction /*dir*/, const protocols::StreamView& /*view*/) override { return 0; }
  void OnGap(protocols::Direction /*dir*/, uint64_t /*bytes*/) override {}
  void TakeRecords(uint64_t /*now_ns*/, bool /*closing*/, std::vector<protocols::L7Record>& /*out*/) override {}
  const protocols::ProtocolCounters& counters() const override {
    static const protocols::ProtocolCounters kNone;
    return kNone;
  }

 private:
  size_t size_;
  std::unique_ptr<char[]> bytes_;
};

}  // namespace sonde::conn
