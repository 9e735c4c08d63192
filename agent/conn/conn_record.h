#pragma once
// What the connection tracker hands downstream: a protocol record plus the
// connection it was seen on.
#include <cstdint>
#include <string>
#include <utility>

#include "agent/protocols/protocol.h"
#include "agent/protocols/record.h"
#include "sonde/abi.h"

namespace sonde::conn {

struct ConnContext {
  uint32_t pid = 0;
  uint32_t tid = 0;  // thread that moved the request's first byte
  std::string comm;
  sonde_tuple tuple{};  // local = s*, remote = d*
  protocols::Role role = protocols::Role::kUnknown;
  uint64_t sock_id = 0;
  int32_t fd = -1;
  bool tls = false;  // bytes are TLS plaintext (OpenSSL uprobes), not socket bytes
};

struct ConnRecord {
  ConnRecord() = default;
  // Built in place from a session's record (a vector's emplace_back), not
  // default-built and assigned over.
  ConnRecord(protocols::L7Record&& r, const ConnContext& c) : record(std::move(r)), conn(c) {}

  protocols::L7Record record;
  ConnContext conn;
};

}  // namespace sonde::conn
