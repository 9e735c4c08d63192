// libFuzzer target: the HTTP/2 session (frames, HPACK state, streams, gRPC
// messages and trailers, gaps, both roles, joined mid-way) over operation
// sequences.
#include <cstddef>
#include <cstdint>

#include "agent/protocols/http2/session.h"
#include "tests/fuzz/session_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::fuzz::DriveSession<sonde::protocols::http2::Http2Session>(data, size);
  return 0;
}
