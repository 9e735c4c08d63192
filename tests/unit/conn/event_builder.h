#pragma once
// Builds raw capture records (sonde_data_event / sonde_conn_event bytes) in
// memory, the way the kernel would, for tests and benchmarks.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sonde/abi.h"

namespace sonde::testing {

struct Endpoints {
  const char* local_ip = "127.0.0.1";
  uint16_t local_port = 0;
  const char* remote_ip = "127.0.0.1";
  uint16_t remote_port = 0;
};

inline sonde_tuple MakeTuple(const Endpoints& e) {
  sonde_tuple t{};
  inet_pton(AF_INET, e.local_ip, t.saddr);
  inet_pton(AF_INET, e.remote_ip, t.daddr);
  t.sport = e.local_port;
  t.dport = e.remote_port;
  t.family = AF_INET;
  t.l4_protocol = 6;
  return t;
}

// One simulated socket of one process. Tracks sequence numbers per direction.
class SocketSim {
 public:
  SocketSim(uint32_t pid, uint32_t tid, std::string comm, uint64_t sock_id, int32_t fd,
            sonde_role role, Endpoints ends)
      : pid_(pid), tid_(tid), comm_(std::move(comm)), sock_id_(sock_id), fd_(fd), role_(role),
        tuple_(MakeTuple(ends)) {}

  std::vector<uint8_t> Open(uint64_t ts) const { return Conn(SONDE_EVENT_CONN_OPEN, ts); }
  std::vector<uint8_t> CloseEv(uint64_t ts) const { return Conn(SONDE_EVENT_CONN_CLOSE, ts); }
  // sock:inet_sock_set_state -> TCP_CLOSE, raised in softirq context (no fd,
  // whatever task was current).
  std::vector<uint8_t> StateCloseEv(uint64_t ts) const {
    std::vector<uint8_t> buf = Conn(SONDE_EVENT_CONN_CLOSE, ts);
    auto* ev = reinterpret_cast<sonde_conn_event*>(buf.data());
    ev->syscall = SONDE_SYS_STATE_CHANGE;
    ev->fd = -1;
    ev->hdr.pid = ev->hdr.tid = 0;
    return buf;
  }

  // A call moving `bytes` bytes of which `data` (a prefix) was captured.
  std::vector<uint8_t> Data(sonde_direction dir, std::string_view data, uint64_t ts_enter,
                            uint64_t ts_exit, uint64_t bytes = 0, bool seq = true) {
    if (bytes == 0) bytes = data.size();
    std::vector<uint8_t> buf(sizeof(sonde_data_event) + data.size());
    auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
    Header(&ev->hdr, SONDE_EVENT_DATA, buf.size(), ts_enter, ts_exit);
    ev->sock_id = sock_id_;
    ev->tuple = tuple_;
    ev->fd = fd_;
    ev->direction = static_cast<uint8_t>(dir);
    ev->role = static_cast<uint8_t>(role_);
    ev->syscall = dir == SONDE_DIR_EGRESS ? SONDE_SYS_WRITE : SONDE_SYS_READ;
    ev->bytes = bytes;
    uint32_t& next = dir == SONDE_DIR_EGRESS ? egress_seq_ : ingress_seq_;
    if (seq) {
      ev->flags |= SONDE_DATA_SEQ_VALID;
      ev->tcp_seq = next;
    }
    next += static_cast<uint32_t>(bytes);
    if (data.size() < bytes) ev->flags |= SONDE_DATA_TRUNCATED;
    ev->payload_len = static_cast<uint32_t>(data.size());
    std::memcpy(buf.data() + sizeof(sonde_data_event), data.data(), data.size());
    return buf;
  }
  std::vector<uint8_t> Write(std::string_view data, uint64_t ts, uint64_t dur = 1000) {
    return Data(SONDE_DIR_EGRESS, data, ts, ts + dur);
  }
  std::vector<uint8_t> Read(std::string_view data, uint64_t ts, uint64_t dur = 1000) {
    return Data(SONDE_DIR_INGRESS, data, ts, ts + dur);
  }
  void SkipSeq(sonde_direction dir, uint32_t n) {
    (dir == SONDE_DIR_EGRESS ? egress_seq_ : ingress_seq_) += n;
  }
  void set_tid(uint32_t tid) { tid_ = tid; }
  // "" sends events without a thread name (the capture names a socket once).
  void set_comm(std::string comm) { comm_ = std::move(comm); }

 private:
  void Header(sonde_event_header* h, uint32_t type, size_t size, uint64_t enter,
              uint64_t exit) const {
    h->type = type;
    h->size = static_cast<uint32_t>(size);
    h->ts_enter_ns = enter;
    h->ts_exit_ns = exit;
    h->pid = pid_;
    h->tid = tid_;
    std::strncpy(h->comm, comm_.c_str(), SONDE_COMM_LEN - 1);
  }
  std::vector<uint8_t> Conn(uint32_t type, uint64_t ts) const {
    std::vector<uint8_t> buf(sizeof(sonde_conn_event));
    auto* ev = reinterpret_cast<sonde_conn_event*>(buf.data());
    Header(&ev->hdr, type, buf.size(), ts, ts);
    ev->sock_id = sock_id_;
    ev->tuple = tuple_;
    ev->fd = fd_;
    ev->role = static_cast<uint8_t>(role_);
    ev->syscall = type == SONDE_EVENT_CONN_CLOSE ? SONDE_SYS_CLOSE
                  : role_ == SONDE_ROLE_CLIENT   ? SONDE_SYS_CONNECT
                                                 : SONDE_SYS_ACCEPT4;
    return buf;
  }

  uint32_t pid_, tid_;
  std::string comm_;
  uint64_t sock_id_;
  int32_t fd_;
  sonde_role role_;
  sonde_tuple tuple_;
  uint32_t egress_seq_ = 1'000'000;
  uint32_t ingress_seq_ = 5'000'000;
};

}  // namespace sonde::testing
