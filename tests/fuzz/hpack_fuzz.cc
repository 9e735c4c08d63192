// libFuzzer target: HPACK header blocks through both backends (the tolerant
// Sonde decoder and nghttp2's), with the table state carried across blocks:
// the input is split into blocks at each 0xff 0x00 pair.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/http2/hpack.h"

using namespace sonde::protocols::http2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  HpackDecoder sonde(HpackBackend::kSonde);
  HpackDecoder nghttp2(HpackBackend::kNghttp2);
  DecodedFieldList fields;
  size_t start = 0;
  for (int block = 0; start <= input.size() && block < 64; ++block) {
    size_t end = input.find(std::string_view("\xff\x00", 2), start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view b = input.substr(start, end - start);
    (void)sonde.Decode(b, fields);
    (void)nghttp2.Decode(b, fields);
    if (block == 3) sonde.LoseState();
    start = end + 2;
  }
  return 0;
}
