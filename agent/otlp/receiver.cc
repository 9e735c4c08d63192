#include "agent/otlp/receiver.h"

#include <unistd.h>

#include "absl/strings/str_split.h"
#include "agent/otlp/text_util.h"

namespace sonde::otlp {

OtlpReceiver::OtlpReceiver(OtlpConfig config)
    : config_(std::move(config)),
      bind_(config_.bind.empty() ? DefaultBindAddresses() : config_.bind),
      ingestor_(config_.ingest) {}

OtlpReceiver::~OtlpReceiver() { Stop(); }

absl::Status OtlpReceiver::Start() {
  if (config_.grpc_port >= 0) {
    auto grpc = GrpcReceiver::Start({bind_, config_.grpc_port, config_.bearer_token, config_.tls}, &ingestor_);
    if (!grpc.ok()) return grpc.status();
    grpc_ = std::move(*grpc);
  }
  if (config_.http_port >= 0) {
    auto http = HttpReceiver::Start({bind_, config_.http_port, config_.bearer_token, config_.http_threads, config_.tls},
                                    &ingestor_);
    if (!http.ok()) {
      Stop();
      return http.status();
    }
    http_ = std::move(*http);
  }
  return absl::OkStatus();
}

void OtlpReceiver::Stop() {
  if (http_) http_->Shutdown();
  if (grpc_) grpc_->Shutdown();
  http_.reset();
  grpc_.reset();
}

CaptureExclusion OtlpReceiver::capture_exclusion() const {
  CaptureExclusion out;
  if (config_.trace_self) return out;
  out.pid = static_cast<uint32_t>(getpid());
  if (grpc_) out.ports.push_back(static_cast<uint16_t>(grpc_->port()));
  if (http_) out.ports.push_back(static_cast<uint16_t>(http_->port()));
  return out;
}

std::vector<std::string> ParseBindList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::string_view part = StripWhitespace(std::string_view(piece.data(), piece.size()));
    if (part == "default") {
      for (auto& a : DefaultBindAddresses()) out.push_back(a);
    } else {
      out.emplace_back(part);
    }
  }
  if (out.empty()) out = DefaultBindAddresses();
  return out;
}

}  // namespace sonde::otlp
