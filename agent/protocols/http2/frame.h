#pragma once
// HTTP/2 framing (RFC 9113 section 4 and 6): the 9-byte frame header, the
// plausibility rules used both to infer the protocol and to find the next
// frame boundary after lost bytes, and payload helpers (padding, priority,
// SETTINGS). Pure functions over bytes; no state.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sonde::protocols::http2 {

inline constexpr size_t kFrameHeaderSize = 9;
inline constexpr std::string_view kConnectionPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr uint32_t kDefaultMaxFrameSize = 16384;
inline constexpr uint32_t kMaxAllowedFrameSize = (1u << 24) - 1;

enum class FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
inline constexpr uint8_t kNumKnownFrameTypes = 10;

namespace flags {
inline constexpr uint8_t kEndStream = 0x1;  // DATA, HEADERS
inline constexpr uint8_t kAck = 0x1;        // SETTINGS, PING
inline constexpr uint8_t kEndHeaders = 0x4;  // HEADERS, PUSH_PROMISE, CONTINUATION
inline constexpr uint8_t kPadded = 0x8;      // DATA, HEADERS, PUSH_PROMISE
inline constexpr uint8_t kPriority = 0x20;   // HEADERS
}  // namespace flags

namespace settings {
inline constexpr uint16_t kHeaderTableSize = 0x1;
inline constexpr uint16_t kEnablePush = 0x2;
inline constexpr uint16_t kMaxConcurrentStreams = 0x3;
inline constexpr uint16_t kInitialWindowSize = 0x4;
inline constexpr uint16_t kMaxFrameSize = 0x5;
inline constexpr uint16_t kMaxHeaderListSize = 0x6;
}  // namespace settings

struct FrameHeader {
  uint32_t length = 0;  // payload bytes (24 bits)
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // reserved bit cleared
  bool reserved_bit = false;

  FrameType frame_type() const { return static_cast<FrameType>(type); }
  bool is_known_type() const { return type < kNumKnownFrameTypes; }
  size_t total_size() const { return kFrameHeaderSize + length; }
};

// `p` must point at kFrameHeaderSize readable bytes.
FrameHeader ParseFrameHeader(const uint8_t* p);
inline FrameHeader ParseFrameHeader(std::string_view bytes) {
  return ParseFrameHeader(reinterpret_cast<const uint8_t*>(bytes.data()));
}

// Whether a header could start a real frame: known type, flags the type
// defines, stream-id rules, type-specific payload sizes, length within
// `max_frame_size`. Unknown frame types are legal on the wire but are never
// accepted here, because this is what separates frames from noise.
bool IsPlausibleFrameHeader(const FrameHeader& h, uint32_t max_frame_size);

// Result of checking that `bytes` (starting at a supposed boundary) is a
// sequence of plausible frames.
enum class ChainCheck : uint8_t {
  kInvalid,   // the first header, or a later one, is implausible
  kNeedMore,  // plausible so far but fewer than `min_frames` could be verified
  kValid,     // `min_frames` plausible frames, or whole frames up to the end
};
// Walks frame headers from offset 0 of `bytes`. Valid when `min_frames`
// consecutive headers are plausible, or when complete plausible frames end
// exactly at the end of `bytes` (a captured write usually ends on a boundary)
// and `exact_end_ok` is set.
ChainCheck CheckFrameChain(std::string_view bytes, uint32_t max_frame_size, int min_frames,
                           bool exact_end_ok);

// Offset of the first position >= `from` where a plausible frame chain starts,
// or nullopt when none can be confirmed yet. `*need_more_at` receives the
// first candidate that needs more bytes to be confirmed (or bytes.size()).
std::optional<size_t> FindFrameBoundary(std::string_view bytes, size_t from,
                                        uint32_t max_frame_size, bool at_end,
                                        size_t* need_more_at);

// Payload of DATA / HEADERS / PUSH_PROMISE without padding (and for HEADERS
// without the priority block, for PUSH_PROMISE without the promised id).
// nullopt when the pad length or the fixed fields overrun the payload.
struct FramePayload {
  std::string_view fragment;     // header block fragment or data
  uint32_t promised_stream = 0;  // PUSH_PROMISE only
  uint32_t padding = 0;          // bytes of padding, including the pad-length byte
};
std::optional<FramePayload> StripPayload(const FrameHeader& h, std::string_view payload);

// Calls fn(id, value) for every SETTINGS parameter. Returns false when the
// payload is not a multiple of 6 bytes.
template <typename Fn>
bool ForEachSetting(std::string_view payload, Fn&& fn) {
  if (payload.size() % 6 != 0) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  for (size_t i = 0; i < payload.size(); i += 6) {
    const uint16_t id = static_cast<uint16_t>((p[i] << 8) | p[i + 1]);
    const uint32_t value = (uint32_t{p[i + 2]} << 24) | (uint32_t{p[i + 3]} << 16) |
                           (uint32_t{p[i + 4]} << 8) | uint32_t{p[i + 5]};
    fn(id, value);
  }
  return true;
}

inline uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace sonde::protocols::http2
