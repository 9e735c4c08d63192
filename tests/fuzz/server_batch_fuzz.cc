// libFuzzer target: the server's ingest decode: the input is a batch (raw),
// and a claimed size (first 4 bytes) + zlib/gzip data (the rest).
#include <cstddef>
#include <cstdint>

#include <google/protobuf/stubs/logging.h>
#include <cstring>
#include <string>

#include "server/ingest/batch_limits.h"
#include "server/ingest/ingest_service.h"

// Invalid UTF-8 in string fields is an expected parse failure: not logged.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  sonde::server::BatchLimits limits;
  limits.max_uncompressed_bytes = 4u << 20;
  (void)sonde::server::CheckBatchShape(bytes, limits);
  sonde::v1::CompressedBatch c;
  c.set_compression(sonde::v1::COMPRESSION_NONE);
  c.set_data(bytes);
  (void)sonde::server::DecodeCompressedBatch(c, limits);
  uint32_t claim = 0;
  if (size >= 4) std::memcpy(&claim, data, 4);
  c.set_compression(size % 2 ? sonde::v1::COMPRESSION_ZLIB : sonde::v1::COMPRESSION_GZIP);
  c.set_uncompressed_size(claim);
  c.set_data(size >= 4 ? bytes.substr(4) : bytes);
  (void)sonde::server::DecodeCompressedBatch(c, limits);
  return 0;
}
