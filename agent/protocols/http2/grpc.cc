#include "agent/protocols/http2/grpc.h"

#include <algorithm>
#include <charconv>

namespace sonde::protocols::http2 {

bool IsGrpcContentType(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size()) return false;
  for (size_t i = 0; i < kGrpc.size(); ++i) {
    char c = ct[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kGrpc[i]) return false;
  }
  return ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';' ||
         ct[kGrpc.size()] == '-';
}

bool SplitGrpcPath(std::string_view path, std::string& service, std::string& method) {
  if (path.size() < 4 || path[0] != '/') return false;
  const size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash == 1 || slash + 1 >= path.size()) return false;
  if (path.find('/', slash + 1) != std::string_view::npos) return false;
  if (path.find_first_of("?# ") != std::string_view::npos) return false;
  service.assign(path.substr(1, slash - 1));
  method.assign(path.substr(slash + 1));
  return true;
}

std::string PercentDecode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

void GrpcMessageCounter::Feed(std::string_view data) {
  bytes_ += data.size();
  if (lost_) return;
  size_t pos = 0;
  while (pos < data.size()) {
    if (payload_left_ > 0) {
      const uint64_t n = std::min<uint64_t>(payload_left_, data.size() - pos);
      payload_left_ -= n;
      pos += n;
      continue;
    }
    if (prefix_have_ == 0 && static_cast<uint8_t>(data[pos]) > 1) {
      lost_ = true;  // the compressed flag is 0 or 1: this is not gRPC framing
      return;
    }
    prefix_[prefix_have_++] = static_cast<uint8_t>(data[pos++]);
    if (prefix_have_ < 5) continue;
    prefix_have_ = 0;
    ++messages_;
    payload_left_ = (uint64_t{prefix_[1]} << 24) | (uint64_t{prefix_[2]} << 16) |
                    (uint64_t{prefix_[3]} << 8) | uint64_t{prefix_[4]};
  }
}

void GrpcMessageCounter::Skip(uint64_t bytes) {
  bytes_ += bytes;
  if (lost_) return;
  if (prefix_have_ == 0 && bytes <= payload_left_) {
    payload_left_ -= bytes;
    return;
  }
  lost_ = true;
}

namespace {
std::optional<std::string_view> FindHeader(const protocols::HeaderList& headers, std::string_view name) {
  for (const HeaderField h : headers) {
    if (!h.unknown && h.name == name) return h.value;
  }
  return std::nullopt;
}
bool HasUnknown(const protocols::HeaderList& headers) {
  for (const HeaderField h : headers) {
    if (h.unknown) return true;
  }
  return false;
}
}  // namespace

void ApplyGrpc(L7Record& rec, const GrpcMessageCounter& request,
               const GrpcMessageCounter& response) {
  const auto req_ct = FindHeader(rec.request.headers, "content-type");
  const auto resp_ct = FindHeader(rec.response.headers, "content-type");
  bool grpc = (req_ct && IsGrpcContentType(*req_ct)) || (resp_ct && IsGrpcContentType(*resp_ct));
  std::string service, method;
  const bool grpc_path = SplitGrpcPath(rec.path, service, method) && rec.query.empty();
  if (!grpc && !req_ct && HasUnknown(rec.request.headers) && rec.method == "POST" &&
      grpc_path && request.messages() > 0 && request.aligned() &&
      (response.bytes() == 0 || response.aligned())) {
    grpc = true;  // content-type was lost with the HPACK state; the framing says gRPC
  }
  if (!grpc) return;
  rec.protocol = L7Protocol::kGrpc;
  if (grpc_path) {
    rec.rpc_service = std::move(service);
    rec.rpc_method = std::move(method);
  }
  rec.request_messages = request.messages();
  rec.response_messages = response.messages();
  // Trailers (or a trailers-only response) are appended to the response headers.
  if (const auto st = FindHeader(rec.response.headers, "grpc-status")) {
    int v = -1;
    const auto [p, ec] = std::from_chars(st->data(), st->data() + st->size(), v);
    if (ec == std::errc() && p == st->data() + st->size() && v >= 0) rec.grpc_status = v;
  }
  if (const auto msg = FindHeader(rec.response.headers, "grpc-message")) {
    rec.grpc_message = PercentDecode(*msg);
  }
}

}  // namespace sonde::protocols::http2
