#include "server/ingest/ingest_grpc_server.h"

namespace sonde::server {

std::unique_ptr<grpc::Server> StartIngestServer(IngestService* service, const IngestServerConfig& config,
                                                int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, config.credentials, port);
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(config.max_message_bytes, INT32_MAX)));
  // A gRPC-compressed message is not inflated (its bytes do not parse as a
  // request: the stream ends INTERNAL) instead of being inflated whole first.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0);
  // Threads are bounded (a stream holds one): beyond the quota new calls get
  // RESOURCE_EXHAUSTED instead of a thread each.
  grpc::ResourceQuota quota("sonde-ingest");
  quota.SetMaxThreads(static_cast<int>(config.max_streams) + 16);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 16);
  // Dead agent connections are noticed (and their instance released).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server && *port == 0) server.reset();
  return server;
}

}  // namespace sonde::server
