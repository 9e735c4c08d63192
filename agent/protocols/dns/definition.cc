#include "agent/protocols/dns/definition.h"

#include "agent/protocols/dns/message.h"
#include "agent/protocols/dns/semantics.h"
#include "agent/protocols/dns/session.h"

namespace sonde::protocols::dns {
namespace {

std::unique_ptr<ProtocolSession> MakeUdpSession(Role role, bool late_join) {
  return std::make_unique<DnsSession>(role, late_join, Transport::kUdp);
}
std::unique_ptr<ProtocolSession> MakeTcpSession(Role role, bool late_join) {
  return std::make_unique<DnsSession>(role, late_join, Transport::kTcp);
}

// A query from the client or a response to it, judged strictly (inference
// sees any UDP/TCP traffic: a DNS-shaped header alone is too weak).
InferResult InferMessage(std::string_view message, Direction dir, Role role, bool need_more_possible) {
  Message m;
  const ParseStatus s = ParseMessage(message, &m);
  if (s == ParseStatus::kNeedMore) {
    if (!need_more_possible) return InferResult::kNo;
    // Only a header that already looks like a query or an answer is worth waiting for.
    Header h;
    if (ParseHeader(message, &h) != ParseStatus::kOk) return InferResult::kMaybeNeedMore;
    const bool sane = h.opcode == 0 && h.questions == 1 &&
                      (h.response ? h.rcode <= 10 : (h.answers == 0 && h.authorities == 0 && h.additionals <= 2));
    return sane ? InferResult::kMaybeNeedMore : InferResult::kNo;
  }
  if (s != ParseStatus::kOk) return InferResult::kNo;
  const bool egress = dir == Direction::kEgress;
  if (PlausibleMessage(m, false)) {
    // A query travels from the client.
    if (role == Role::kClient && !egress) return InferResult::kNo;
    if (role == Role::kServer && egress) return InferResult::kNo;
    return InferResult::kYes;
  }
  if (PlausibleMessage(m, true)) {
    // A response alone needs a known role (the query may have gone unseen).
    if ((role == Role::kClient && !egress) || (role == Role::kServer && egress)) return InferResult::kYes;
  }
  return InferResult::kNo;
}

}  // namespace

InferResult InferUdp(std::string_view first_bytes, Direction dir, Role role) {
  // The capture hands over whole datagrams (or their captured prefix).
  return InferMessage(first_bytes, dir, role, /*need_more_possible=*/false);
}

InferResult InferTcp(std::string_view first_bytes, Direction dir, Role role) {
  if (first_bytes.size() < 2) return InferResult::kMaybeNeedMore;
  const size_t length = (static_cast<uint8_t>(first_bytes[0]) << 8) | static_cast<uint8_t>(first_bytes[1]);
  if (length < kHeaderBytes) return InferResult::kNo;
  const std::string_view message = first_bytes.substr(2, length);
  const InferResult r = InferMessage(message, dir, role, message.size() < length);
  // The whole frame must be there (queries are small) for a yes.
  if (r == InferResult::kYes && message.size() < length) return InferResult::kMaybeNeedMore;
  return r;
}

Role InferRole(std::string_view first_bytes, Direction dir) {
  // UDP datagram or TCP frame: a query in egress means this process asks.
  for (const std::string_view m : {first_bytes, first_bytes.size() > 2 ? first_bytes.substr(2) : std::string_view()}) {
    Message msg;
    if (ParseMessage(m, &msg) != ParseStatus::kOk) continue;
    if (PlausibleMessage(msg, false)) return dir == Direction::kEgress ? Role::kClient : Role::kServer;
    if (PlausibleMessage(msg, true)) return dir == Direction::kEgress ? Role::kServer : Role::kClient;
  }
  return Role::kUnknown;
}

ProtocolDefinition UdpDefinition() {
  static const RecordKind kRecordKinds[] = {{L7Protocol::kDns, &DnsSemantics()}};
  ProtocolDefinition d{L7Protocol::kDns, "dns", &InferUdp, &MakeUdpSession, &InferRole, kRecordKinds};
  d.transports = kTransportUdp;
  return d;
}

ProtocolDefinition TcpDefinition() {
  static const RecordKind kRecordKinds[] = {{L7Protocol::kDns, &DnsSemantics()}};
  ProtocolDefinition d{L7Protocol::kDns, "dns", &InferTcp, &MakeTcpSession, &InferRole, kRecordKinds};
  d.transports = kTransportTcp;
  return d;
}

}  // namespace sonde::protocols::dns
