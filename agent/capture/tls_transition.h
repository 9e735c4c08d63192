#pragma once
// The moment a socket's bytes switch from ciphertext to TLS plaintext, as
// seen by user space. Before the kernel learns a socket is TLS (its first
// SSL_read/SSL_write), the handshake went out as ordinary data events: the
// tracker holds a connection full of ciphertext for it, possibly one that
// has given up inference. The first plaintext event of a socket is
// therefore preceded by a SONDE_SYS_TLS_START close event: the ciphertext
// connection ends (it yields no records) and the plaintext starts a fresh
// one, inferred from its first bytes like any connection. The marker is
// part of the event stream, so recordings replay the same way.
//
// It also tells the capture source whether a socket user space gave up on
// was given up while it was still ciphertext: the kernel must not then stop
// copying it, its plaintext is on the way.
#include <cstddef>
#include <cstdint>
#include <unordered_set>

#include "agent/capture/event_source.h"
#include "sonde/abi.h"

namespace sonde::capture {

class TlsTransitions {
 public:
  explicit TlsTransitions(size_t max_sockets = 1u << 18) : max_sockets_(max_sockets) {}

  // True when `d` is the first plaintext of its socket: `*start` is then the
  // close marker to deliver before it.
  bool OnData(const sonde_data_event& d, sonde_conn_event* start);
  // A close ends the socket (a later one with the same inode is new).
  void OnConn(const sonde_conn_event& c);
  // Hands `ev` to `deliver`, preceded by the close marker when it is the
  // first plaintext of its socket: what an event source does with each record.
  void Deliver(RawEvent ev, const EventCallback& deliver);
  // Plaintext of this socket has been delivered.
  bool SeenPlaintext(uint64_t sock_id) const { return plaintext_.count(sock_id) != 0; }

  uint64_t transitions() const { return transitions_; }
  // Times the set was full and forgotten (each live TLS socket then gets one
  // more marker: its open exchange may be cut).
  uint64_t resets() const { return resets_; }

 private:
  size_t max_sockets_;
  std::unordered_set<uint64_t> plaintext_;
  uint64_t transitions_ = 0;
  uint64_t resets_ = 0;
};

}  // namespace sonde::capture
