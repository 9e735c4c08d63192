#pragma once
// OTLP/gRPC receiver: opentelemetry.proto.collector.{trace,metrics,logs}.v1
// *Service/Export on one port, on every bind address.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/otlp/ingestor.h"
#include "common/http/guarded_server.h"

namespace grpc {
class Server;
}

namespace sonde::otlp {

struct GrpcReceiverOptions {
  std::vector<std::string> bind_addresses;  // IP literals
  int port = 4317;                          // 0: pick a free port (tests)
  std::string bearer_token;                 // empty: no authentication
  net::TlsFiles tls;                        // empty cert: plaintext
};

class GrpcReceiver {
 public:
  // Binds and starts serving; the ingestor must outlive the receiver.
  static absl::StatusOr<std::unique_ptr<GrpcReceiver>> Start(const GrpcReceiverOptions& options,
                                                             Ingestor* ingestor);
  ~GrpcReceiver();
  GrpcReceiver(const GrpcReceiver&) = delete;
  GrpcReceiver& operator=(const GrpcReceiver&) = delete;

  int port() const { return port_; }
  void Shutdown();

  struct Services;  // the three generated-service implementations

 private:
  GrpcReceiver() = default;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" (brackets possibly %-encoded) -> address, port.
bool ParseGrpcPeer(std::string_view peer, std::string* address, uint16_t* port);

}  // namespace sonde::otlp
