#pragma once
// An agent's ingest connection for e2e tests of sonde-server: the agent's
// gRPC protocol (Hello, then batches acknowledged one by one), driven
// step by step so a test controls exactly which batch goes to which server
// and when (failover, resends).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "sonde/v1/ingest.grpc.pb.h"

namespace sonde::testing {

// One agent connection: Hello, then batches acknowledged one by one.
class AgentStream {
 public:
  AgentStream(int port, const std::string& instance) {
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
    stub_ = v1::Ingest::NewStub(channel_);
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub_->Stream(&ctx_);
    v1::IngestRequest hello;
    hello.mutable_hello()->mutable_agent()->set_host_name("node-" + instance);
    hello.mutable_hello()->mutable_agent()->set_node_id("node-id-" + instance);
    hello.mutable_hello()->mutable_agent()->set_instance_id(instance);
    ok_ = stream_->Write(hello);
  }
  ~AgentStream() {
    stream_->WritesDone();
    v1::IngestResponse r;
    while (stream_->Read(&r)) {
    }
    (void)stream_->Finish();
  }
  // Sends and waits for the ack; the acked sequence (0: no ack).
  uint64_t Send(const v1::Batch& batch) {
    v1::IngestRequest req;
    *req.mutable_batch() = batch;
    if (!ok_ || !stream_->Write(req)) return 0;
    v1::IngestResponse resp;
    if (!stream_->Read(&resp)) return 0;
    error_ = resp.error();
    return resp.acked_sequence();
  }
  const std::string& error() const { return error_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Ingest::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::IngestRequest, v1::IngestResponse>> stream_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace sonde::testing
