#include "agent/otlp/http_receiver.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "agent/otlp/auth.h"
#include "agent/otlp/rpc_status.h"
#include "agent/otlp/text_util.h"
#include "common/http/guarded_server.h"
#include "common/proto/message_shape.h"
#include "google/protobuf/arena.h"

namespace sonde::otlp {
namespace {

using collector_trace_response = opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using collector_metrics_response =
    opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceResponse;
using collector_logs_response = opentelemetry::proto::collector::logs::v1::ExportLogsServiceResponse;

void Reply(httplib::Response& res, int http_status, BodyFormat format, std::string body) {
  res.status = http_status;
  res.set_content(std::move(body), std::string(ContentTypeOf(format)).c_str());
}

void ReplyStatus(httplib::Response& res, int http_status, BodyFormat format, RpcCode code,
                 std::string_view message, int retry_after_s = 0) {
  Reply(res, http_status, format,
        format == BodyFormat::kJson ? EncodeRpcStatusJson(code, message, retry_after_s)
                                    : EncodeRpcStatusProto(code, message, retry_after_s));
}

constexpr size_t kKeepBodyBytes = 4u << 20;

// Decoded OTLP costs far more than its wire bytes when elements are empty (a
// 2-byte empty attribute becomes a 56-byte view, more as a message): a body
// may hold at most one message per this many bytes (real telemetry: 10-15),
// which bounds decoding memory to a small multiple of the body.
constexpr size_t kMinWireBytesPerMessage = 8;

absl::Status CheckProtobufShape(std::string_view body, const google::protobuf::Descriptor* type) {
  proto_shape::ShapeLimits shape;
  shape.max_messages = std::max<size_t>(4096, body.size() / kMinWireBytesPerMessage);
  absl::Status st = proto_shape::CheckMessageShape(body, type, shape);
  if (st.code() == absl::StatusCode::kResourceExhausted)
    return absl::InvalidArgumentError(absl::StrCat("body holds ", st.message(), ": too many for its size"));
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed protobuf ", type->name()));
  return st;
}

bool SupportedEncoding(std::string_view encoding) {
  // httplib inflates gzip/deflate/br while reading (bounded by our receiver callback).
  std::string e(StripWhitespace(encoding));
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e.empty() || e == "identity" || e == "gzip" || e == "x-gzip" || e == "deflate" || e == "br";
}

template <typename Response>
std::string EncodeResult(const ExportResult& r, BodyFormat format,
                         void (*fill)(Response*, const ExportResult&)) {
  Response response;
  if (r.rejected > 0 || !r.error_message.empty()) fill(&response, r);
  return EncodeBody(response, format);
}

}  // namespace

HttpReceiver::HttpReceiver(HttpReceiverOptions options, Ingestor* ingestor)
    : options_(std::move(options)), ingestor_(ingestor) {}

void HttpReceiver::Install(httplib::Server& server) {
  // Wire limits, connection/thread bounds and slow-client timeouts are the
  // GuardedHttpServer's (see Start); decoded bytes are capped at max_body below.
  const size_t max_body = ingestor_->options().max_body_bytes;
  auto handle = [this, max_body](Signal signal, const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader) {
    auto format_or = ParseContentType(req.get_header_value("Content-Type"));
    // Errors about the content type itself are answered in JSON (no usable request type).
    const BodyFormat format = format_or.ok() ? *format_or : BodyFormat::kJson;
    if (!BearerTokenMatches(options_.bearer_token, req.get_header_value("Authorization"))) {
      ingestor_->stats().CountReject(RejectReason::kUnauthenticated);
      res.set_header("WWW-Authenticate", "Bearer");
      return ReplyStatus(res, 401, format, RpcCode::kUnauthenticated, "missing or wrong bearer token");
    }
    if (!format_or.ok()) {
      ingestor_->stats().CountReject(RejectReason::kUnsupportedMedia);
      return ReplyStatus(res, 415, format, RpcCode::kInvalidArgument, std::string(format_or.status().message()));
    }
    if (!SupportedEncoding(req.get_header_value("Content-Encoding"))) {
      ingestor_->stats().CountReject(RejectReason::kUnsupportedMedia);
      return ReplyStatus(res, 415, format, RpcCode::kInvalidArgument,
                         absl::StrCat("unsupported Content-Encoding '",
                                      req.get_header_value("Content-Encoding"), "'"));
    }
    const size_t declared = req.get_header_value<uint64_t>("Content-Length");
    if (declared > max_body) {
      ingestor_->stats().CountReject(RejectReason::kTooLarge);
      const std::string encoding = req.get_header_value("Content-Encoding");
      if (encoding.empty() || encoding == "identity") {
        reader([](const char*, size_t) { return true; });  // drain, discard (bounded by the wire limit)
      }
      res.set_header("Connection", "close");
      return ReplyStatus(res, 413, format, RpcCode::kResourceExhausted,
                         absl::StrCat("body exceeds ", max_body, " bytes"));
    }
    // 503 + Retry-After: overloaded (UNAVAILABLE) or over the memory limit
    // (RESOURCE_EXHAUSTED in the google.rpc.Status body).
    auto shed = [&](RejectReason why) {
      const int retry = ingestor_->options().retry_after_s;
      res.set_header("Retry-After", std::to_string(retry));
      res.set_header("Connection", "close");
      if (why == RejectReason::kMemoryLimit) {
        return ReplyStatus(res, 503, format, RpcCode::kResourceExhausted, std::string(kMemoryLimitMessage), retry);
      }
      return ReplyStatus(res, 503, format, RpcCode::kUnavailable, "agent overloaded, retry later", retry);
    };
    RejectReason why = RejectReason::kOverloaded;
    std::optional<Ingestor::Ticket> ticket = ingestor_->Admit(declared, &why);
    if (!ticket) return shed(why);

    // A per-thread body buffer keeps its pages across requests: a fresh
    // 100s-of-KiB string per request costs page faults. Released after the
    // request when it grew past kKeepBodyBytes.
    thread_local std::string body;
    struct ReleaseLarge {
      ~ReleaseLarge() {
        if (body.capacity() > kKeepBodyBytes) std::string().swap(body);
      }
    } release_large;
    body.clear();
    body.reserve(std::min(declared, max_body));
    bool too_large = false;
    bool overloaded = false;
    size_t accounted = declared;
    const bool complete = reader([&](const char* data, size_t n) {
      if (body.size() + n > max_body) {
        too_large = true;
        return false;  // stops httplib's inflater at the bound
      }
      body.append(data, n);
      if (body.size() > accounted) {  // decompressed/chunked bodies grow past Content-Length
        overloaded = !ticket->Grow(body.size() - accounted, &why);
        accounted = body.size();
        if (overloaded) return false;
      }
      return true;
    });
    if (too_large || res.status == 413) {
      ingestor_->stats().CountReject(RejectReason::kTooLarge);
      res.set_header("Connection", "close");
      return ReplyStatus(res, 413, format, RpcCode::kResourceExhausted,
                         absl::StrCat("body exceeds ", max_body, " bytes after decompression"));
    }
    if (overloaded) {
      ingestor_->stats().CountReject(why);
      return shed(why);
    }
    if (!complete) {
      ingestor_->stats().CountReject(RejectReason::kBadPayload);
      res.set_header("Connection", "close");
      return ReplyStatus(res, 400, format, RpcCode::kInvalidArgument,
                         "unreadable body (truncated or corrupt compression)");
    }

    PeerInfo peer{req.remote_addr, static_cast<uint16_t>(req.remote_port),
                  static_cast<uint16_t>(port_), Transport::kHttp};
    ExportResult result;
    std::string response;
    absl::Status decoded;
    if (format == BodyFormat::kProtobuf) {
      decoded = CheckProtobufShape(body, signal == Signal::kTraces    ? ExportTraceRequest::descriptor()
                                         : signal == Signal::kMetrics ? ExportMetricsRequest::descriptor()
                                                                      : ExportLogsRequest::descriptor());
    }
    if (decoded.ok()) switch (signal) {
      case Signal::kTraces: {
        if (format == BodyFormat::kProtobuf) {  // converted straight from the wire bytes
          absl::StatusOr<ExportResult> exported = ingestor_->ExportTracesProtobuf(body, peer);
          decoded = exported.status();
          if (!decoded.ok()) break;
          result = std::move(*exported);
          response = EncodeResult<collector_trace_response>(
              result, format, [](collector_trace_response* r, const ExportResult& e) {
                r->mutable_partial_success()->set_rejected_spans(e.rejected);
                r->mutable_partial_success()->set_error_message(e.error_message);
              });
          break;
        }
        google::protobuf::Arena arena;  // one allocation region per request: faster parse + free
        auto* request = google::protobuf::Arena::CreateMessage<ExportTraceRequest>(&arena);
        decoded = DecodeBody(body, format, request);
        if (!decoded.ok()) break;
        result = ingestor_->ExportTraces(*request, peer);
        response = EncodeResult<collector_trace_response>(
            result, format, [](collector_trace_response* r, const ExportResult& e) {
              r->mutable_partial_success()->set_rejected_spans(e.rejected);
              r->mutable_partial_success()->set_error_message(e.error_message);
            });
        break;
      }
      case Signal::kMetrics: {
        auto request = std::make_shared<ExportMetricsRequest>();
        decoded = DecodeBody(body, format, request.get());
        if (!decoded.ok()) break;
        result = ingestor_->ExportMetrics(std::move(request), peer);
        response = EncodeResult<collector_metrics_response>(
            result, format, [](collector_metrics_response* r, const ExportResult& e) {
              r->mutable_partial_success()->set_rejected_data_points(e.rejected);
              r->mutable_partial_success()->set_error_message(e.error_message);
            });
        break;
      }
      case Signal::kLogs: {
        auto request = std::make_shared<ExportLogsRequest>();
        decoded = DecodeBody(body, format, request.get());
        if (!decoded.ok()) break;
        result = ingestor_->ExportLogs(std::move(request), peer);
        response = EncodeResult<collector_logs_response>(
            result, format, [](collector_logs_response* r, const ExportResult& e) {
              r->mutable_partial_success()->set_rejected_log_records(e.rejected);
              r->mutable_partial_success()->set_error_message(e.error_message);
            });
        break;
      }
    }
    if (!decoded.ok()) {
      ingestor_->stats().CountReject(RejectReason::kBadPayload);
      return ReplyStatus(res, 400, format, RpcCode::kInvalidArgument, std::string(decoded.message()));
    }
    if (result.memory_limited) return shed(RejectReason::kMemoryLimit);  // dropped over the hard limit
    Reply(res, 200, format, std::move(response));
  };

  server.Post("/v1/traces", [handle](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
    handle(Signal::kTraces, req, res, reader);
  });
  server.Post("/v1/metrics", [handle](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader) {
    handle(Signal::kMetrics, req, res, reader);
  });
  server.Post("/v1/logs", [handle](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
    handle(Signal::kLogs, req, res, reader);
  });
  // "Expect: 100-continue" (curl sends it for bodies over 1 MiB): when the
  // request would be shed (overloaded, over the memory limit) the 503 goes
  // out before the client sends its body, instead of "100 Continue" followed
  // by a 503 and a close while it is still sending.
  server.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    const size_t declared = req.get_header_value<uint64_t>("Content-Length");
    const std::optional<RejectReason> why = ingestor_->WouldShed(declared);
    if (!why) return 100;
    ingestor_->stats().CountReject(*why);
    const int retry = ingestor_->options().retry_after_s;
    res.set_header("Retry-After", std::to_string(retry));
    res.set_header("Connection", "close");
    auto format = ParseContentType(req.get_header_value("Content-Type"));
    const BodyFormat f = format.ok() ? *format : BodyFormat::kJson;
    if (*why == RejectReason::kMemoryLimit) {
      ReplyStatus(res, 503, f, RpcCode::kResourceExhausted, std::string(kMemoryLimitMessage), retry);
    } else {
      ReplyStatus(res, 503, f, RpcCode::kUnavailable, "agent overloaded, retry later", retry);
    }
    return 503;
  });
}

absl::StatusOr<std::unique_ptr<HttpReceiver>> HttpReceiver::Start(const HttpReceiverOptions& options,
                                                                  Ingestor* ingestor) {
  if (options.bind_addresses.empty()) return absl::InvalidArgumentError("no bind address");
  std::unique_ptr<HttpReceiver> receiver(new HttpReceiver(options, ingestor));
  int port = options.port;
  const size_t max_body = ingestor->options().max_body_bytes;
  net::HttpLimits limits;
  limits.threads = static_cast<size_t>(std::max(options.threads, 1));
  limits.max_connections = limits.threads * 2;
  // Room above max_body lets an oversize identity body be drained, so a client
  // still sending reads the 413 instead of a connection reset.
  limits.max_body_bytes = max_body * 4;
  limits.head_timeout = std::chrono::seconds(5);
  limits.request_timeout = std::chrono::seconds(30);
  limits.keep_alive_timeout = std::chrono::seconds(10);
  // Only the three OTLP paths read a body (streamed, bounded after decompression).
  limits.accepts_body = [](const httplib::Request& req) {
    return req.method == "POST" &&
           (req.path == "/v1/traces" || req.path == "/v1/metrics" || req.path == "/v1/logs");
  };
  for (const std::string& address : options.bind_addresses) {
    auto guarded = net::GuardedHttpServer::Create(limits, options.tls);
    if (!guarded.ok()) return guarded.status();
    std::unique_ptr<httplib::Server> server = std::move(*guarded);
    receiver->Install(*server);
    if (port == 0) {
      port = server->bind_to_any_port(address.c_str());
      if (port <= 0) return absl::UnavailableError(absl::StrCat("OTLP/HTTP: cannot bind ", address));
    } else if (!server->bind_to_port(address.c_str(), port)) {
      return absl::UnavailableError(absl::StrCat("OTLP/HTTP: cannot bind ", address, ":", port));
    }
    receiver->servers_.push_back(std::move(server));
  }
  receiver->port_ = port;
  for (auto& server : receiver->servers_) {
    httplib::Server* s = server.get();
    receiver->threads_.emplace_back([s] { s->listen_after_bind(); });
  }
  // stop() before the accept loop runs would be lost (and join() would hang).
  for (auto& server : receiver->servers_) {
    for (int i = 0; i < 2000 && !server->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return receiver;
}

void HttpReceiver::Shutdown() {
  for (auto& server : servers_) server->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

HttpReceiver::~HttpReceiver() { Shutdown(); }

}  // namespace sonde::otlp
