#include "agent/capture/event_json.h"

#include "agent/capture/tuple_format.h"

namespace sonde::capture {
namespace {

void AddCommon(nlohmann::json& j, const sonde_event_header& h, uint64_t offset) {
  j["ts_enter_ns"] = h.ts_enter_ns;
  j["ts_exit_ns"] = h.ts_exit_ns;
  if (offset != 0) j["time_unix_ns"] = h.ts_exit_ns + offset;
  j["pid"] = h.pid;
  j["tid"] = h.tid;
  j["comm"] = std::string(h.comm, strnlen(h.comm, sizeof(h.comm)));
}

void AddTuple(nlohmann::json& j, const sonde_tuple& t) {
  j["l4"] = t.l4_protocol == 6 ? "tcp" : t.l4_protocol == 17 ? "udp" : "other";
  j["local"] = FormatEndpoint(t.family, t.saddr, t.sport);
  j["remote"] = FormatEndpoint(t.family, t.daddr, t.dport);
}

}  // namespace

std::string EscapePayload(const uint8_t* data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len);
  for (size_t i = 0; i < len; ++i) {
    const uint8_t c = data[i];
    if (c == '\\') {
      out += "\\\\";
    } else if ((c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' || c == '\t') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

nlohmann::json EventToJson(RawEvent ev, uint64_t offset) {
  nlohmann::json j;
  if (const auto* d = AsDataEvent(ev)) {
    j["type"] = "data";
    AddCommon(j, d->hdr, offset);
    j["sock_id"] = d->sock_id;
    j["fd"] = d->fd;
    AddTuple(j, d->tuple);
    j["direction"] = DirectionName(d->direction);
    j["role"] = RoleName(d->role);
    j["syscall"] = SyscallName(d->syscall);
    j["bytes"] = d->bytes;
    if (d->flags & SONDE_DATA_SEQ_VALID) j["tcp_seq"] = d->tcp_seq;
    j["truncated"] = (d->flags & SONDE_DATA_TRUNCATED) != 0;
    if (d->flags & SONDE_DATA_TLS) j["tls"] = true;
    j["payload_len"] = d->payload_len;
    j["payload"] = EscapePayload(d->payload, d->payload_len);
    return j;
  }
  if (const auto* c = AsConnEvent(ev)) {
    j["type"] = c->hdr.type == SONDE_EVENT_CONN_OPEN ? "conn_open" : "conn_close";
    AddCommon(j, c->hdr, offset);
    j["sock_id"] = c->sock_id;
    j["fd"] = c->fd;
    AddTuple(j, c->tuple);
    j["role"] = RoleName(c->role);
    j["syscall"] = SyscallName(c->syscall);
    j["retval"] = c->retval;
    j["bytes_sent"] = c->bytes_sent;
    j["bytes_received"] = c->bytes_received;
    return j;
  }
  j["type"] = "malformed";
  j["size"] = ev.size();
  return j;
}

}  // namespace sonde::capture
