#pragma once
// The gRPC server in front of IngestService (:7070) with every limit that
// must act before a message is parsed: the message size on the wire, no
// gRPC-level decompression (gRPC inflates a whole message before checking
// its size; agents compress batches themselves, bounded by batch_limits.h),
// a thread quota and concurrent-stream cap, keepalive. sonde-server and the
// tests start it the same way.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "server/ingest/ingest_service.h"

namespace sonde::server {

struct IngestServerConfig {
  std::string listen;  // host:port; port 0 picks a free one
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  size_t max_message_bytes = 8u << 20;
  size_t max_streams = 64;  // thread quota: one per stream, plus 16
};

// nullptr when it cannot listen; `*port` is the bound port.
std::unique_ptr<grpc::Server> StartIngestServer(IngestService* service, const IngestServerConfig& config, int* port);

}  // namespace sonde::server
