#include "agent/otlp/grpc_receiver.h"

#include <grpcpp/grpcpp.h>

#include <charconv>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/otlp/auth.h"
#include "agent/otlp/body_codec.h"
#include "agent/otlp/rpc_status.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.grpc.pb.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

namespace sonde::otlp {
namespace {

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const net::TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  grpc::SslServerCredentialsOptions ssl(tls.client_ca_file.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({read(tls.key_file), read(tls.cert_file)});
  if (!tls.client_ca_file.empty()) ssl.pem_root_certs = read(tls.client_ca_file);
  return grpc::SslServerCredentials(ssl);
}

namespace collector = opentelemetry::proto::collector;

std::string BindTarget(const std::string& address, int port) {
  return address.find(':') != std::string::npos ? absl::StrCat("[", address, "]:", port)
                                                : absl::StrCat(address, ":", port);
}

// Shared front half of every Export: authentication and admission.
class Gate {
 public:
  Gate(Ingestor* ingestor, std::string token, int* port)
      : ingestor_(ingestor), token_(std::move(token)), port_(port) {}

  grpc::Status Check(grpc::ServerContextBase* ctx, std::optional<Ingestor::Ticket>* ticket,
                     PeerInfo* peer) const {
    if (!token_.empty()) {
      auto it = ctx->client_metadata().find("authorization");
      std::string_view value;
      if (it != ctx->client_metadata().end()) value = std::string_view(it->second.data(), it->second.size());
      if (!BearerTokenMatches(token_, value)) {
        ingestor_->stats().CountReject(RejectReason::kUnauthenticated);
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
      }
    }
    RejectReason why = RejectReason::kOverloaded;
    if (auto admitted = ingestor_->Admit(0, &why)) ticket->emplace(std::move(*admitted));
    if (!*ticket) return Shed(why);
    peer->transport = Transport::kGrpc;
    peer->receiver_port = static_cast<uint16_t>(*port_);
    ParseGrpcPeer(ctx->peer(), &peer->address, &peer->port);
    return grpc::Status::OK;
  }
  Ingestor* ingestor() const { return ingestor_; }

  // Retryable refusals, with a RetryInfo: overloaded is UNAVAILABLE, over the
  // memory limit RESOURCE_EXHAUSTED (what the Collector's memory_limiter says).
  grpc::Status Shed(RejectReason why) const {
    const int retry = ingestor_->options().retry_after_s;
    if (why == RejectReason::kMemoryLimit) {
      const std::string message(kMemoryLimitMessage);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, message,
                          EncodeRpcStatusProto(RpcCode::kResourceExhausted, message, retry));
    }
    const std::string message = "agent overloaded, retry later";
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, message,
                        EncodeRpcStatusProto(RpcCode::kUnavailable, message, retry));
  }
  // The message's bytes, learnt after admission (gRPC reads it first).
  grpc::Status Account(std::optional<Ingestor::Ticket>* ticket, size_t bytes) const {
    RejectReason why = RejectReason::kOverloaded;
    if ((*ticket)->Grow(bytes, &why)) return grpc::Status::OK;
    ingestor_->stats().CountReject(why);
    return Shed(why);
  }

 private:
  Ingestor* ingestor_;
  std::string token_;
  const int* port_;
};

// gRPC's own per-message decompression is off (Start): it inflates a whole
// message before checking its size, so 256 KiB of gzip claiming 256 MiB cost
// 256 MiB. A compressed message reaches the handler as its compressed bytes
// and is inflated here, never past the body limit. gRPC does not hand the
// grpc-encoding header to the application, so the framing is recognised by
// its magic: gzip (1f 8b: field 3 with wire type 7, never valid protobuf) or
// zlib (78 xx with the header checksum; an OTLP request starts with field 1).
bool LooksCompressed(std::string_view b) {
  if (b.size() < 2) return false;
  const auto b0 = static_cast<unsigned char>(b[0]), b1 = static_cast<unsigned char>(b[1]);
  if (b0 == 0x1f && b1 == 0x8b) return true;
  return b0 == 0x78 && (b0 * 256u + b1) % 31u == 0;
}

// The request message as one contiguous view: borrowed when gRPC holds it in
// one slice, else copied once into a per-thread buffer that keeps its pages
// (a fresh 100s-of-KiB buffer per call page-faults); inflated (bounded) when
// the client compressed it.
class MessageBytes {
 public:
  grpc::Status Read(const grpc::ByteBuffer* request, Ingestor* ingestor) {
    std::vector<grpc::Slice> slices;
    if (request->Valid() && !request->Dump(&slices).ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read the request message");
    }
    std::string& joined = Joined();
    if (slices.size() == 1) {
      slice_ = std::move(slices[0]);  // first: a small slice's bytes live inside it
      body_ = std::string_view(reinterpret_cast<const char*>(slice_.begin()), slice_.size());
    } else if (slices.size() > 1) {
      joined.clear();
      for (const grpc::Slice& slice : slices) {
        joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
      body_ = joined;
    }
    if (!LooksCompressed(body_)) return grpc::Status::OK;
    const size_t limit = ingestor->options().max_body_bytes;
    absl::StatusOr<std::string> inflated = InflateBounded(body_, limit);
    if (!inflated.ok()) {
      const bool too_large = inflated.status().code() == absl::StatusCode::kResourceExhausted;
      ingestor->stats().CountReject(too_large ? RejectReason::kTooLarge : RejectReason::kBadPayload);
      return grpc::Status(too_large ? grpc::StatusCode::RESOURCE_EXHAUSTED : grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("compressed message: ", inflated.status().message()));
    }
    inflated_ = std::move(*inflated);
    body_ = inflated_;
    return grpc::Status::OK;
  }
  std::string_view body() const { return body_; }
  ~MessageBytes() {
    if (Joined().capacity() > (4u << 20)) std::string().swap(Joined());  // do not pin a huge one
  }

 private:
  static std::string& Joined() {
    thread_local std::string joined;
    return joined;
  }
  grpc::Slice slice_;
  std::string inflated_;
  std::string_view body_;
};

template <typename Response>
grpc::Status SerializeReply(const Response& reply, grpc::ByteBuffer* response) {
  bool own_buffer = false;
  return grpc::SerializationTraits<Response>::Serialize(reply, response, &own_buffer);
}

// Every Export takes the raw-bytes callback route: traces are converted
// straight from their wire bytes (Ingestor::ExportTracesProtobuf) instead of
// being deserialized into protobuf messages first, no sync-server thread
// hand-off happens per call, and compressed messages are inflated bounded.
using RawTraceServiceBase = collector::trace::v1::TraceService::WithRawCallbackMethod_Export<
    collector::trace::v1::TraceService::Service>;
using RawMetricsServiceBase = collector::metrics::v1::MetricsService::WithRawCallbackMethod_Export<
    collector::metrics::v1::MetricsService::Service>;
using RawLogsServiceBase = collector::logs::v1::LogsService::WithRawCallbackMethod_Export<
    collector::logs::v1::LogsService::Service>;

// Every Export: the gate (credential, admission), the raw bytes (inflated
// within the body limit), then their size accounted against the limiter.
grpc::Status AdmitCall(const Gate* gate, grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                       std::optional<Ingestor::Ticket>* ticket, PeerInfo* peer, MessageBytes* bytes) {
  if (grpc::Status st = gate->Check(ctx, ticket, peer); !st.ok()) return st;
  if (grpc::Status st = bytes->Read(request, gate->ingestor()); !st.ok()) return st;
  return gate->Account(ticket, bytes->body().size());
}

class TraceService final : public RawTraceServiceBase {
 public:
  explicit TraceService(const Gate* gate) : gate_(gate) {}
  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(Handle(ctx, request, response));
    return reactor;
  }

 private:
  grpc::Status Handle(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                      grpc::ByteBuffer* response) const {
    std::optional<Ingestor::Ticket> ticket;
    PeerInfo peer;
    MessageBytes bytes;
    if (grpc::Status st = AdmitCall(gate_, ctx, request, &ticket, &peer, &bytes); !st.ok()) return st;
    absl::StatusOr<ExportResult> r = gate_->ingestor()->ExportTracesProtobuf(bytes.body(), peer);
    if (!r.ok()) {
      gate_->ingestor()->stats().CountReject(RejectReason::kBadPayload);
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(r.status().message()));
    }
    if (r->memory_limited) return gate_->Shed(RejectReason::kMemoryLimit);
    collector::trace::v1::ExportTraceServiceResponse reply;
    if (r->rejected > 0 || !r->error_message.empty()) {
      reply.mutable_partial_success()->set_rejected_spans(r->rejected);
      reply.mutable_partial_success()->set_error_message(r->error_message);
    }
    return SerializeReply(reply, response);
  }

  const Gate* gate_;
};

// Metrics and logs are kept as OTLP messages (sinks hold them beyond the call).
template <typename Request>
grpc::Status ParseOwned(const Gate* gate, grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                        std::optional<Ingestor::Ticket>* ticket, PeerInfo* peer, std::shared_ptr<Request>* out) {
  MessageBytes bytes;
  if (grpc::Status st = AdmitCall(gate, ctx, request, ticket, peer, &bytes); !st.ok()) return st;
  auto parsed = std::make_shared<Request>();
  if (!parsed->ParseFromArray(bytes.body().data(), static_cast<int>(bytes.body().size()))) {
    gate->ingestor()->stats().CountReject(RejectReason::kBadPayload);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed protobuf message");
  }
  *out = std::move(parsed);
  return grpc::Status::OK;
}

class MetricsService final : public RawMetricsServiceBase {
 public:
  explicit MetricsService(const Gate* gate) : gate_(gate) {}
  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(Handle(ctx, request, response));
    return reactor;
  }

 private:
  grpc::Status Handle(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                      grpc::ByteBuffer* response) const {
    std::optional<Ingestor::Ticket> ticket;
    PeerInfo peer;
    std::shared_ptr<ExportMetricsRequest> owned;
    if (grpc::Status st = ParseOwned(gate_, ctx, request, &ticket, &peer, &owned); !st.ok()) return st;
    ExportResult r = gate_->ingestor()->ExportMetrics(std::move(owned), peer);
    if (r.memory_limited) return gate_->Shed(RejectReason::kMemoryLimit);
    collector::metrics::v1::ExportMetricsServiceResponse reply;
    if (r.rejected > 0 || !r.error_message.empty()) {
      reply.mutable_partial_success()->set_rejected_data_points(r.rejected);
      reply.mutable_partial_success()->set_error_message(r.error_message);
    }
    return SerializeReply(reply, response);
  }

  const Gate* gate_;
};

class LogsService final : public RawLogsServiceBase {
 public:
  explicit LogsService(const Gate* gate) : gate_(gate) {}
  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(Handle(ctx, request, response));
    return reactor;
  }

 private:
  grpc::Status Handle(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                      grpc::ByteBuffer* response) const {
    std::optional<Ingestor::Ticket> ticket;
    PeerInfo peer;
    std::shared_ptr<ExportLogsRequest> owned;
    if (grpc::Status st = ParseOwned(gate_, ctx, request, &ticket, &peer, &owned); !st.ok()) return st;
    ExportResult r = gate_->ingestor()->ExportLogs(std::move(owned), peer);
    if (r.memory_limited) return gate_->Shed(RejectReason::kMemoryLimit);
    collector::logs::v1::ExportLogsServiceResponse reply;
    if (r.rejected > 0 || !r.error_message.empty()) {
      reply.mutable_partial_success()->set_rejected_log_records(r.rejected);
      reply.mutable_partial_success()->set_error_message(r.error_message);
    }
    return SerializeReply(reply, response);
  }

  const Gate* gate_;
};

}  // namespace

struct GrpcReceiver::Services {
  Services(Ingestor* ingestor, std::string token, int* port)
      : gate(ingestor, std::move(token), port), traces(&gate), metrics(&gate), logs(&gate) {}
  Gate gate;
  TraceService traces;
  MetricsService metrics;
  LogsService logs;
};

bool ParseGrpcPeer(std::string_view peer, std::string* address, uint16_t* port) {
  std::string text = absl::StrReplaceAll(std::string(peer), {{"%5B", "["}, {"%5D", "]"}, {"%25", "%"}});
  std::string_view v = text;
  if (v.rfind("ipv4:", 0) == 0 || v.rfind("ipv6:", 0) == 0) v.remove_prefix(5);
  else return false;
  size_t colon = v.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = v.substr(0, colon), port_text = v.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (ec != std::errc() || value > 65535) return false;
  *address = std::string(host);
  *port = static_cast<uint16_t>(value);
  return true;
}

absl::StatusOr<std::unique_ptr<GrpcReceiver>> GrpcReceiver::Start(const GrpcReceiverOptions& options,
                                                                  Ingestor* ingestor) {
  if (options.bind_addresses.empty()) return absl::InvalidArgumentError("no bind address");
  std::unique_ptr<GrpcReceiver> receiver(new GrpcReceiver());
  receiver->services_ = std::make_unique<Services>(ingestor, options.bearer_token, &receiver->port_);

  grpc::ServerBuilder builder;
  std::vector<int> selected(options.bind_addresses.size(), 0);
  for (size_t i = 0; i < options.bind_addresses.size(); ++i) {
    builder.AddListeningPort(BindTarget(options.bind_addresses[i], options.port),
                             ServerCredentials(options.tls), &selected[i]);
  }
  // The wire size is checked before the message is read; the inflated size
  // by MessageBytes while inflating (gRPC's own decompression is off).
  builder.AddChannelArgument(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(ingestor->options().max_body_bytes, std::numeric_limits<int>::max())));
  builder.RegisterService(&receiver->services_->traces);
  builder.RegisterService(&receiver->services_->metrics);
  builder.RegisterService(&receiver->services_->logs);
  receiver->server_ = builder.BuildAndStart();
  if (!receiver->server_) {
    return absl::UnavailableError(absl::StrCat("OTLP/gRPC: cannot listen on port ", options.port));
  }
  for (size_t i = 0; i < selected.size(); ++i) {
    if (selected[i] == 0) {
      return absl::UnavailableError(absl::StrCat("OTLP/gRPC: cannot bind ",
                                                 BindTarget(options.bind_addresses[i], options.port)));
    }
  }
  receiver->port_ = selected[0];
  return receiver;
}

void GrpcReceiver::Shutdown() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
}

GrpcReceiver::~GrpcReceiver() { Shutdown(); }

}  // namespace sonde::otlp
