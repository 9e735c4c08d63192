#pragma once
// OTLP/HTTP receiver: POST /v1/traces, /v1/metrics, /v1/logs with
// application/x-protobuf or application/json bodies, optionally gzip/deflate
// encoded. Responses use the request's content type:
//   200 + Export*ServiceResponse (partial success in the body), never 202/204;
//   400 + google.rpc.Status for a malformed body;
//   401 for a wrong/missing bearer token; 415 for an unsupported type/encoding;
//   413 + RESOURCE_EXHAUSTED when the body exceeds the limit after decompression
//        (decompression stops at the limit: no zip bombs);
//   503 + UNAVAILABLE + Retry-After when overloaded.
// The listener is a net::GuardedHttpServer: 413 before reading a body on any
// other path, 431 for oversize heads, 408 for slow clients, 503 beyond
// 2 x threads connections.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/otlp/ingestor.h"
#include "common/http/guarded_server.h"

namespace httplib {
class Server;
}

namespace sonde::otlp {

struct HttpReceiverOptions {
  std::vector<std::string> bind_addresses;  // IP literals, one listener each
  int port = 4318;                          // 0: pick a free port (single address only)
  std::string bearer_token;
  int threads = 32;  // per listener; a keep-alive connection holds a thread while open
  net::TlsFiles tls;  // empty cert: plain HTTP
};

class HttpReceiver {
 public:
  static absl::StatusOr<std::unique_ptr<HttpReceiver>> Start(const HttpReceiverOptions& options,
                                                             Ingestor* ingestor);
  ~HttpReceiver();
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  int port() const { return port_; }
  void Shutdown();

 private:
  HttpReceiver(HttpReceiverOptions options, Ingestor* ingestor);
  void Install(httplib::Server& server);

  HttpReceiverOptions options_;
  Ingestor* ingestor_;
  int port_ = 0;
  std::vector<std::unique_ptr<httplib::Server>> servers_;
  std::vector<std::thread> threads_;
};

}  // namespace sonde::otlp
