// libFuzzer target: the HTTP/1 session (request/response stitching,
// pipelining, gaps, both roles, joined mid-way) over operation sequences.
#include <cstddef>
#include <cstdint>

#include "agent/protocols/http1/stitcher.h"
#include "tests/fuzz/session_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sonde::fuzz::DriveSession<sonde::protocols::http1::Http1Session>(data, size);
  return 0;
}
