#include "agent/protocols/http2/frame.h"

namespace sonde::protocols::http2 {

FrameHeader ParseFrameHeader(const uint8_t* p) {
  FrameHeader h;
  h.length = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | uint32_t{p[2]};
  h.type = p[3];
  h.flags = p[4];
  const uint32_t sid = ReadU32(p + 5);
  h.reserved_bit = (sid & 0x80000000u) != 0;
  h.stream_id = sid & 0x7fffffffu;
  return h;
}

bool IsPlausibleFrameHeader(const FrameHeader& h, uint32_t max_frame_size) {
  if (!h.is_known_type() || h.reserved_bit || h.length > max_frame_size) return false;
  switch (h.frame_type()) {
    case FrameType::kData:
      return h.stream_id != 0 && (h.flags & ~(flags::kEndStream | flags::kPadded)) == 0;
    case FrameType::kHeaders:
      return h.stream_id != 0 &&
             (h.flags & ~(flags::kEndStream | flags::kEndHeaders | flags::kPadded |
                          flags::kPriority)) == 0;
    case FrameType::kPriority:
      return h.stream_id != 0 && h.length == 5 && h.flags == 0;
    case FrameType::kRstStream:
      return h.stream_id != 0 && h.length == 4 && h.flags == 0;
    case FrameType::kSettings:
      return h.stream_id == 0 && h.length % 6 == 0 && (h.flags & ~flags::kAck) == 0 &&
             ((h.flags & flags::kAck) == 0 || h.length == 0);
    case FrameType::kPushPromise:
      return h.stream_id != 0 && h.length >= 4 &&
             (h.flags & ~(flags::kEndHeaders | flags::kPadded)) == 0;
    case FrameType::kPing:
      return h.stream_id == 0 && h.length == 8 && (h.flags & ~flags::kAck) == 0;
    case FrameType::kGoaway:
      return h.stream_id == 0 && h.length >= 8 && h.flags == 0;
    case FrameType::kWindowUpdate:
      return h.length == 4 && h.flags == 0;
    case FrameType::kContinuation:
      return h.stream_id != 0 && (h.flags & ~flags::kEndHeaders) == 0;
  }
  return false;
}

ChainCheck CheckFrameChain(std::string_view bytes, uint32_t max_frame_size, int min_frames,
                           bool exact_end_ok) {
  size_t pos = 0;
  int frames = 0;
  while (frames < min_frames) {
    if (pos == bytes.size() && frames > 0 && exact_end_ok) return ChainCheck::kValid;
    if (bytes.size() - pos < kFrameHeaderSize) return ChainCheck::kNeedMore;
    const FrameHeader h = ParseFrameHeader(bytes.substr(pos));
    if (!IsPlausibleFrameHeader(h, max_frame_size)) return ChainCheck::kInvalid;
    ++frames;
    pos += h.total_size();
    if (pos > bytes.size()) return frames >= min_frames ? ChainCheck::kValid : ChainCheck::kNeedMore;
  }
  return ChainCheck::kValid;
}

std::optional<size_t> FindFrameBoundary(std::string_view bytes, size_t from,
                                        uint32_t max_frame_size, bool at_end,
                                        size_t* need_more_at) {
  if (need_more_at != nullptr) *need_more_at = bytes.size();
  for (size_t i = from; i < bytes.size(); ++i) {
    // Cheap pre-filter: the length's top byte is zero for every frame that
    // fits the default size, and the type must be known.
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + i;
    const size_t avail = bytes.size() - i;
    if (max_frame_size <= 0xffff && p[0] != 0) continue;
    if (avail > 3 && p[3] >= kNumKnownFrameTypes) continue;
    // Two chained frames confirm a boundary; at the end of the stream, or
    // when whole frames end exactly at the end of the bytes, one is enough.
    const ChainCheck c =
        CheckFrameChain(bytes.substr(i), max_frame_size, at_end ? 1 : 2, /*exact_end_ok=*/true);
    if (c == ChainCheck::kValid) return i;
    if (c == ChainCheck::kNeedMore && !at_end) {
      if (need_more_at != nullptr) *need_more_at = i;
      // A candidate that needs more bytes blocks the search: later offsets
      // are only considered once this one is refuted.
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<FramePayload> StripPayload(const FrameHeader& h, std::string_view payload) {
  FramePayload out;
  size_t start = 0;
  size_t pad = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const bool can_pad = h.frame_type() == FrameType::kData ||
                       h.frame_type() == FrameType::kHeaders ||
                       h.frame_type() == FrameType::kPushPromise;
  if (can_pad && (h.flags & flags::kPadded) != 0) {
    if (payload.empty()) return std::nullopt;
    pad = p[0];
    start = 1;
    out.padding = static_cast<uint32_t>(pad + 1);
  }
  if (h.frame_type() == FrameType::kHeaders && (h.flags & flags::kPriority) != 0) {
    start += 5;  // exclusive bit + stream dependency + weight
  }
  if (h.frame_type() == FrameType::kPushPromise) {
    if (payload.size() < start + 4) return std::nullopt;
    out.promised_stream = ReadU32(p + start) & 0x7fffffffu;
    start += 4;
  }
  if (payload.size() < start + pad) return std::nullopt;
  out.fragment = payload.substr(start, payload.size() - start - pad);
  return out;
}

}  // namespace sonde::protocols::http2
