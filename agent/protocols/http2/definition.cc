#include "agent/protocols/http2/definition.h"

#include "agent/protocols/http/semantics.h"
#include "agent/protocols/http2/grpc_semantics.h"

#include <algorithm>
#include <memory>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/session.h"
#include "agent/protocols/http2/tolerant_hpack.h"

namespace sonde::protocols::http2 {

InferResult Infer(std::string_view first_bytes, Direction /*dir*/, Role /*role*/) {
  if (first_bytes.empty()) return InferResult::kMaybeNeedMore;
  const size_t n = std::min(first_bytes.size(), kConnectionPreface.size());
  if (first_bytes.substr(0, n) == kConnectionPreface.substr(0, n)) {
    return n == kConnectionPreface.size() ? InferResult::kYes : InferResult::kMaybeNeedMore;
  }
  // Mid-connection: frames at the default maximum size have a zero first
  // length byte; text protocols (HTTP/1, TLS records) never do.
  if (first_bytes[0] != 0) return InferResult::kNo;
  switch (CheckFrameChain(first_bytes, kDefaultMaxFrameSize, /*min_frames=*/2,
                          /*exact_end_ok=*/true)) {
    case ChainCheck::kValid: return InferResult::kYes;
    case ChainCheck::kNeedMore: return InferResult::kMaybeNeedMore;
    case ChainCheck::kInvalid: return InferResult::kNo;
  }
  return InferResult::kNo;
}

Role InferRole(std::string_view first_bytes, Direction dir) {
  const bool egress = dir == Direction::kEgress;
  auto sender_is = [egress](bool client) {
    return client == egress ? Role::kClient : Role::kServer;
  };
  if (first_bytes.starts_with(kConnectionPreface)) return sender_is(/*client=*/true);
  // Decode header blocks without any table state: pseudo-headers are nearly
  // always static-table or literal fields.
  TolerantHpackDecoder decoder;
  decoder.LoseState();
  DecodedFieldList fields;
  size_t pos = 0;
  while (first_bytes.size() - pos >= kFrameHeaderSize) {
    const FrameHeader h = ParseFrameHeader(first_bytes.substr(pos));
    if (!IsPlausibleFrameHeader(h, kDefaultMaxFrameSize) ||
        first_bytes.size() - pos < h.total_size()) {
      break;
    }
    if (h.frame_type() == FrameType::kPushPromise) return sender_is(/*client=*/false);
    if (h.frame_type() == FrameType::kHeaders && (h.flags & flags::kEndHeaders) != 0) {
      const auto payload = StripPayload(h, first_bytes.substr(pos + kFrameHeaderSize, h.length));
      if (payload) {
        fields.Clear();
        (void)decoder.Decode(payload->fragment, fields);
        for (const DecodedField& f : fields) {
          if (f.unknown()) continue;
          if (f.name == ":method") return sender_is(/*client=*/true);
          if (f.name == ":status") return sender_is(/*client=*/false);
        }
      }
    }
    pos += h.total_size();
  }
  return Role::kUnknown;
}

namespace {
std::unique_ptr<ProtocolSession> MakeSession(Role role, bool late_join) {
  return std::make_unique<Http2Session>(role, late_join);
}
}  // namespace

ProtocolDefinition Definition() {
  static const RecordKind kRecordKinds[] = {
      {L7Protocol::kHttp2, &http::HttpSemantics()},
      {L7Protocol::kGrpc, &GrpcSemantics()},
  };
  ProtocolDefinition def{L7Protocol::kHttp2, "http2", &Infer, &MakeSession, &InferRole, kRecordKinds};
  def.thaw = [](std::string_view frozen) -> std::unique_ptr<ProtocolSession> { return Http2Session::Thaw(frozen); };
  return def;
}

}  // namespace sonde::protocols::http2
