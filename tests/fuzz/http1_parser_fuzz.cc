// libFuzzer target: HTTP/1 request/response heads, message-start search and
// the chunked body decoder over arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/http1/parser.h"

using namespace sonde::protocols::http1;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  MessageHead head;
  if (ParseRequestHead(buf, &head) == ParseStatus::kOk) (void)RequestFraming(head);
  MessageHead resp;
  if (ParseResponseHead(buf, &resp) == ParseStatus::kOk) (void)ResponseFraming(resp, "GET");
  for (ScanIsa isa : {ScanIsa::kScalar, BestScanIsa()}) {
    if (!ScanIsaSupported(isa)) continue;
    MessageHead h;
    (void)ParseRequestHeadWith(isa, buf, &h);
    (void)ParseResponseHeadWith(isa, buf, &h);
  }
  (void)FindMessageStart(buf, 0, true);
  (void)FindMessageStart(buf, 0, false);
  (void)LooksLikeRequestStart(buf);
  (void)LooksLikeResponseStart(buf);
  ChunkedDecoder chunked;
  size_t offset = 0;
  while (offset < buf.size()) {
    size_t consumed = 0;
    auto r = chunked.Feed(buf.substr(offset), &consumed);
    if (r != ChunkedDecoder::Result::kNeedMore || consumed == 0) break;
    offset += consumed;
  }
  return 0;
}
