#pragma once
// httplib::Server with every buffer and every wait bounded (issue #17):
//   - at most `max_connections` connections are served or wait for a thread;
//     beyond that a connection is answered 503 + Retry-After and closed;
//   - a connection waiting for a request holds no thread (IdleParking);
//   - a request head is capped in bytes (431) and in header count (431), and
//     must arrive within `head_timeout` (408): slow clients cannot hold a
//     serving thread; an idle keep-alive connection gives its thread up as
//     soon as another connection waits for one;
//   - a body is refused with 413 before any of it is read when it is larger
//     than `max_body_bytes`, or when the route takes no body at all
//     (`accepts_body`), which covers chunked and compressed bodies on unknown
//     paths; a request must complete within `request_timeout` (408);
//   - optional TLS (and client certificates when `tls.client_ca_file` is set).
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sonde::net {

class BoundedTaskQueue;
class IdleParking;

struct TlsFiles {
  std::string cert_file;       // PEM certificate chain; empty: plain HTTP
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // non-empty: clients must present a certificate it signed
  bool enabled() const { return !cert_file.empty(); }
};

struct HttpLimits {
  size_t threads = 8;
  size_t max_connections = 64;  // served + waiting for a thread
  size_t max_idle_connections = 1024;  // waiting for a request: an fd each, no thread
  size_t max_head_bytes = 64 * 1024;
  size_t max_header_count = 100;
  size_t max_body_bytes = 1 << 20;  // wire bytes, Content-Length checked before reading
  std::chrono::milliseconds head_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};
  // A body must arrive at this average rate (after 2 s): a peer trickling a
  // large body is cut off instead of holding a thread and its admission.
  uint64_t min_body_bytes_per_s = 32 * 1024;
  // Once connections wait for a thread, a request head must be complete
  // within this (slow heads then cannot starve the others).
  std::chrono::milliseconds head_timeout_under_pressure{1000};
  std::chrono::milliseconds keep_alive_timeout{5'000};
  std::chrono::milliseconds write_timeout{10'000};
  // Routes that read a body (their handlers stream and bound it). Any body
  // sent elsewhere is refused with 413 unread. Empty: no route takes a body.
  std::function<bool(const httplib::Request&)> accepts_body;
};

struct HttpGuardCounters {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> idle_closed{0};  // parked connections that never sent a request
  std::atomic<uint64_t> rejected_connections{0};  // 503: over max_connections
  std::atomic<uint64_t> oversize_heads{0};        // 431
  std::atomic<uint64_t> oversize_bodies{0};       // 413 before reading
  std::atomic<uint64_t> timeouts{0};              // 408
};

class GuardedHttpServer final : public httplib::Server {
 public:
  // Fails when the TLS files cannot be loaded.
  static absl::StatusOr<std::unique_ptr<GuardedHttpServer>> Create(HttpLimits limits, TlsFiles tls = {});
  ~GuardedHttpServer() override;

  const HttpGuardCounters& counters() const { return counters_; }
  const HttpLimits& limits() const { return limits_; }

 private:
  explicit GuardedHttpServer(HttpLimits limits);
  bool process_and_close_socket(socket_t sock) override;
  // Serves `sock` now, or parks it until it is readable (then it comes back
  // through the pool). `fresh`: no request was read on it yet.
  void Handle(socket_t sock, bool fresh);
  // True when the connection was parked between requests (not to be closed).
  bool Serve(socket_t sock, SSL* ssl, bool fresh);
  bool ParkIfIdle(socket_t sock, std::chrono::milliseconds idle_limit);

  HttpLimits limits_;
  HttpGuardCounters counters_;
  std::atomic<BoundedTaskQueue*> pool_{nullptr};
  std::unique_ptr<IdleParking> parking_;
  SSL_CTX* ssl_ctx_ = nullptr;
};

}  // namespace sonde::net
