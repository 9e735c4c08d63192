#include "common/http/guarded_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/http/bounded_task_queue.h"
#include "common/http/guarded_stream.h"
#include "common/http/idle_parking.h"

namespace sonde::net {
namespace {

using Clock = GuardedStream::Clock;

// Set by the pre/post-routing handlers for the request the current thread
// serves: the connection closes after the response (its body was not read).
thread_local bool t_close_after_response = false;

bool HasBody(const httplib::Request& req) {
  return req.get_header_value<uint64_t>("Content-Length") > 0 || req.has_header("Transfer-Encoding");
}

void Refuse(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_header("Connection", "close");
  res.set_content(message + "\n", "text/plain");
  t_close_after_response = true;
}

// Closes without resetting: unread request bytes would make close() send an
// RST that can destroy the response still in flight. Bounded drain.
void LingeringClose(socket_t sock) {
  ::shutdown(sock, SHUT_WR);
  char scratch[4096];
  size_t drained = 0;
  const auto until = Clock::now() + std::chrono::milliseconds(200);
  while (drained < (256u << 10) && Clock::now() < until) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) break;
    ssize_t n = ::recv(sock, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(sock);
}

// For refusals on the accepting thread: no waiting (it must keep accepting).
void QuickClose(socket_t sock) {
  ::shutdown(sock, SHUT_WR);
  char scratch[4096];
  while (::recv(sock, scratch, sizeof(scratch), MSG_DONTWAIT) > 0) {
  }
  ::close(sock);
}

std::string SslError() {
  unsigned long e = ERR_get_error();
  char text[256] = {};
  ERR_error_string_n(e, text, sizeof(text));
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GuardedHttpServer>> GuardedHttpServer::Create(HttpLimits limits,
                                                                             TlsFiles tls) {
  std::unique_ptr<GuardedHttpServer> server(new GuardedHttpServer(std::move(limits)));
  if (tls.enabled()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
    server->ssl_ctx_ = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
      return absl::InvalidArgumentError(absl::StrCat("TLS certificate ", tls.cert_file, ": ", SslError()));
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
      return absl::InvalidArgumentError(absl::StrCat("TLS key ", tls.key_file, ": ", SslError()));
    if (!tls.client_ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1)
        return absl::InvalidArgumentError(
            absl::StrCat("TLS client CA ", tls.client_ca_file, ": ", SslError()));
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  return server;
}

GuardedHttpServer::GuardedHttpServer(HttpLimits limits) : limits_(std::move(limits)) {
  set_payload_max_length(limits_.max_body_bytes);
  set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(limits_.head_timeout).count() + 1);
  new_task_queue = [this] {
    // Called by listen_after_bind() on the bound socket: httplib 0.11 listens
    // with a backlog of 5, so a burst of connections would be dropped by the
    // kernel before any limit here applies. listen() again resizes it.
    ::listen(svr_sock_.load(), SOMAXCONN);
    auto* pool = new BoundedTaskQueue(limits_.threads, limits_.max_connections > limits_.threads
                                                           ? limits_.max_connections - limits_.threads
                                                           : 0);
    parking_ = std::make_unique<IdleParking>(limits_.max_idle_connections, [this](int sock) {
      // Runs on the parking thread, which the pool's shutdown stops first.
      pool_.load()->enqueue([this, sock] {
        if (RejectingConnection()) {
          ++counters_.rejected_connections;
          GuardedStream strm(sock, nullptr, 0, std::chrono::milliseconds(100));
          if (ssl_ctx_ == nullptr) strm.WriteFinalResponse(503, "Service Unavailable");
          QuickClose(sock);
          return;
        }
        Handle(sock, /*fresh=*/false);
      });
    }, &counters_.idle_closed);
    pool->before_shutdown = [this] { parking_->Stop(); };
    pool_ = pool;
    return pool;  // owned by httplib's accept loop
  };
  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_close_after_response = false;
    if (req.headers.size() > limits_.max_header_count) {
      ++counters_.oversize_heads;
      Refuse(res, 431, absl::StrCat("more than ", limits_.max_header_count, " header fields"));
      return HandlerResponse::Handled;
    }
    if (!HasBody(req)) return HandlerResponse::Unhandled;
    const bool accepted = limits_.accepts_body && limits_.accepts_body(req);
    if (!accepted) {
      ++counters_.oversize_bodies;
      Refuse(res, 413, "this endpoint takes no request body");
      return HandlerResponse::Handled;
    }
    if (req.get_header_value<uint64_t>("Content-Length") > limits_.max_body_bytes) {
      ++counters_.oversize_bodies;
      Refuse(res, 413, absl::StrCat("request body exceeds ", limits_.max_body_bytes, " bytes"));
      return HandlerResponse::Handled;
    }
    return HandlerResponse::Unhandled;
  });
  set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.get_header_value("Connection") == "close") t_close_after_response = true;
  });
}

GuardedHttpServer::~GuardedHttpServer() {
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  ++counters_.connections;
  if (RejectingConnection()) {  // the pool and its backlog are full
    ++counters_.rejected_connections;
    GuardedStream strm(sock, nullptr, 0, std::chrono::milliseconds(100));
    if (ssl_ctx_ == nullptr) strm.WriteFinalResponse(503, "Service Unavailable");
    QuickClose(sock);
    return false;
  }
  Handle(sock, /*fresh=*/true);
  return true;
}

bool GuardedHttpServer::ParkIfIdle(socket_t sock, std::chrono::milliseconds idle_limit) {
  pollfd p{sock, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0) return false;  // readable: serve at once
  return parking_ != nullptr && parking_->Park(sock, Clock::now() + idle_limit);
}

void GuardedHttpServer::Handle(socket_t sock, bool fresh) {
  // A new connection that has not sent anything yet waits without a thread.
  if (fresh && ParkIfIdle(sock, limits_.head_timeout)) return;
  SSL* ssl = nullptr;
  if (ssl_ctx_ != nullptr) {
    ssl = SSL_new(ssl_ctx_);
    SSL_set_fd(ssl, sock);
    const auto deadline = Clock::now() + limits_.head_timeout;
    GuardedStream waiter(sock, nullptr, 0, limits_.write_timeout);
    bool ok = false;
    for (;;) {
      int rc = SSL_accept(ssl);
      if (rc == 1) {
        ok = true;
        break;
      }
      int err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) break;
      if (!waiter.WaitReadable(deadline)) {
        ++counters_.timeouts;
        break;
      }
    }
    if (!ok) {
      SSL_free(ssl);
      LingeringClose(sock);
      return;
    }
  }
  const bool parked = Serve(sock, ssl, fresh || ssl != nullptr);
  if (ssl != nullptr) {
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }
  if (!parked) LingeringClose(sock);
}

bool GuardedHttpServer::Serve(socket_t sock, SSL* ssl, bool fresh) {
  GuardedStream strm(sock, ssl, limits_.max_head_bytes, limits_.write_timeout);
  strm.SetPressure(
      [this] {
        BoundedTaskQueue* pool = pool_.load();
        return pool != nullptr && pool->pending() > 0;
      },
      limits_.head_timeout_under_pressure);
  bool first = true;
  for (size_t served = 0; served < 10'000 && svr_sock_ != INVALID_SOCKET; ++served) {
    // Between requests a plain connection is parked (no thread held); a TLS
    // one keeps its thread (its session lives here) but yields it as soon as
    // another connection waits for one.
    if (!first && ssl == nullptr && !strm.HasBuffered() && ParkIfIdle(sock, limits_.keep_alive_timeout))
      return true;
    const auto wait_until =
        Clock::now() + (first && fresh ? limits_.head_timeout : first ? std::chrono::milliseconds(1000)
                                                                      : limits_.keep_alive_timeout);
    bool readable = false;
    while (Clock::now() < wait_until && svr_sock_ != INVALID_SOCKET) {
      if (strm.WaitReadable(std::min(wait_until, Clock::now() + std::chrono::milliseconds(50)))) {
        readable = true;
        break;
      }
      BoundedTaskQueue* pool = pool_.load();
      if (!first && pool != nullptr && pool->pending() > 0) return false;
    }
    if (!readable) {
      if (first) {
        ++counters_.timeouts;
        strm.WriteFinalResponse(408, "Request Timeout");
      }
      return false;
    }
    const auto started = Clock::now();
    strm.BeginHead(started + limits_.head_timeout);
    t_close_after_response = false;
    bool connection_closed = false;
    const bool ok = process_request(strm, /*close_connection=*/false, connection_closed,
                                    [&](httplib::Request&) {
                                      strm.BeginBody(started + limits_.request_timeout, limits_.min_body_bytes_per_s);
                                    });
    switch (strm.failure()) {
      case GuardedStream::Failure::kHeadTooLarge:
        ++counters_.oversize_heads;
        strm.WriteFinalResponse(431, "Request Header Fields Too Large");
        return false;
      case GuardedStream::Failure::kTimedOut:
        ++counters_.timeouts;
        strm.WriteFinalResponse(408, "Request Timeout");
        return false;
      case GuardedStream::Failure::kClosed:
        return false;
      case GuardedStream::Failure::kNone:
        break;
    }
    if (!ok || connection_closed || t_close_after_response) return false;
    first = false;
  }
  return false;
}

}  // namespace sonde::net
