// libFuzzer target: HTTP/2 frame headers, chain checks, boundary search,
// payload stripping and SETTINGS over arbitrary bytes; every HEADERS
// fragment found goes through both HPACK backends.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/hpack.h"

using namespace sonde::protocols::http2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)CheckFrameChain(bytes, 1u << 14, 2, true);
  size_t need_more_at = 0;
  (void)FindFrameBoundary(bytes, 0, 1u << 14, true, &need_more_at);
  HpackDecoder sonde(HpackBackend::kSonde);
  HpackDecoder nghttp2(HpackBackend::kNghttp2);
  DecodedFieldList fields;
  size_t offset = 0;
  while (offset + kFrameHeaderSize <= bytes.size()) {
    FrameHeader h = ParseFrameHeader(bytes.substr(offset));
    (void)IsPlausibleFrameHeader(h, kMaxAllowedFrameSize);
    const size_t end = offset + h.total_size();
    if (end > bytes.size()) break;
    std::string_view payload = bytes.substr(offset + kFrameHeaderSize, h.length);
    if (auto p = StripPayload(h, payload); p && h.frame_type() == FrameType::kHeaders) {
      (void)sonde.Decode(p->fragment, fields);
      (void)nghttp2.Decode(p->fragment, fields);
    }
    if (h.frame_type() == FrameType::kSettings) {
      ForEachSetting(payload, [](uint16_t, uint32_t) {});
    }
    offset = end;
  }
  return 0;
}
