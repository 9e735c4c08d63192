#pragma once
// The byte stream under one guarded HTTP connection (plain TCP or TLS). It
// enforces, below httplib's parser, what httplib 0.11 does not bound:
//   - a request head (request line + headers) larger than `max_head_bytes`
//     fails the read before the bytes are held (httplib reads lines without
//     a bound) and is answered 431;
//   - a head that is not complete by its deadline (1 s once other
//     connections wait for a thread), a body arriving slower than its
//     minimum rate, or a request not complete by its deadline (slow clients)
//     fails the read and is answered 408.
#include <httplib.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace sonde::net {

class GuardedStream final : public httplib::Stream {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Failure { kNone, kHeadTooLarge, kTimedOut, kClosed };

  // `ssl` (may be null) is an accepted TLS session on `sock`; not owned.
  GuardedStream(socket_t sock, SSL* ssl, size_t max_head_bytes,
                std::chrono::milliseconds write_timeout);

  // Starts a request: head bytes are counted from here, until `deadline`.
  void BeginHead(Clock::time_point deadline);
  // The head was parsed: body bytes are read until `deadline`, and after a
  // grace period at no less than `min_bytes_per_s` on average (0: no rate).
  void BeginBody(Clock::time_point deadline, uint64_t min_bytes_per_s = 0);
  // While it returns true (other connections wait for a thread), a head gets
  // at most `limit` from its first byte.
  void SetPressure(std::function<bool()> under_pressure, std::chrono::milliseconds limit) {
    under_pressure_ = std::move(under_pressure);
    pressure_head_limit_ = limit;
  }
  // Waits until a byte is readable (buffered, or on the socket) or `deadline`.
  bool WaitReadable(Clock::time_point deadline);
  Failure failure() const { return failure_; }
  // Bytes read from the transport but not consumed yet (pipelined requests).
  bool HasBuffered() const { return buf_begin_ < buf_end_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0); }

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return sock_; }

  // Writes a whole minimal response (used for the 408/431/503 answers the
  // parser cannot give), then marks the stream closed.
  void WriteFinalResponse(int status, const char* reason);

 private:
  bool Fill();  // refills buf_ from the transport; false on error/EOF/deadline
  bool WaitFor(short events, Clock::time_point deadline);
  // The deadline for the next byte: the phase's, or sooner under pressure
  // (head) or at the minimum rate (body).
  Clock::time_point EffectiveDeadline() const;
  // Waits for readability in slices, re-evaluating EffectiveDeadline().
  bool WaitReadableGuarded(short events);

  socket_t sock_;
  SSL* ssl_;
  size_t max_head_bytes_;
  std::chrono::milliseconds write_timeout_;
  bool in_head_ = true;
  size_t head_bytes_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point phase_start_{};
  uint64_t body_bytes_ = 0;
  uint64_t min_body_rate_ = 0;
  std::function<bool()> under_pressure_;
  std::chrono::milliseconds pressure_head_limit_{1000};
  Failure failure_ = Failure::kNone;
  std::array<char, 16 * 1024> buf_{};
  size_t buf_begin_ = 0;
  size_t buf_end_ = 0;
};

}  // namespace sonde::net
