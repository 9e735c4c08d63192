#include "agent/capture/tls_transition.h"

namespace sonde::capture {

bool TlsTransitions::OnData(const sonde_data_event& d, sonde_conn_event* start) {
  if (!(d.flags & SONDE_DATA_TLS) || d.sock_id == 0) return false;
  if (plaintext_.count(d.sock_id) != 0) return false;
  if (plaintext_.size() >= max_sockets_) {
    plaintext_.clear();
    ++resets_;
  }
  plaintext_.insert(d.sock_id);
  ++transitions_;
  *start = sonde_conn_event{};
  start->hdr = d.hdr;
  start->hdr.type = SONDE_EVENT_CONN_CLOSE;
  start->hdr.size = sizeof(*start);
  start->hdr.ts_exit_ns = start->hdr.ts_enter_ns;  // before the plaintext call returned
  start->sock_id = d.sock_id;
  start->tuple = d.tuple;
  start->fd = d.fd;
  start->role = d.role;
  start->syscall = SONDE_SYS_TLS_START;
  return true;
}

void TlsTransitions::Deliver(RawEvent ev, const EventCallback& deliver) {
  if (const sonde_data_event* d = AsDataEvent(ev)) {
    sonde_conn_event start;
    if (OnData(*d, &start)) deliver(RawEvent(reinterpret_cast<const uint8_t*>(&start), sizeof(start)));
  } else if (const sonde_conn_event* c = AsConnEvent(ev)) {
    OnConn(*c);
  }
  deliver(ev);
}

void TlsTransitions::OnConn(const sonde_conn_event& c) {
  if (c.hdr.type == SONDE_EVENT_CONN_CLOSE && c.syscall == SONDE_SYS_CLOSE) plaintext_.erase(c.sock_id);
}

}  // namespace sonde::capture
