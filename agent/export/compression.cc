#include "agent/export/compression.h"

#include <zlib.h>

namespace sonde::exporter {

absl::StatusOr<std::string> Compress(std::string_view data, v1::Compression codec, int level) {
  if (codec == v1::COMPRESSION_NONE) return std::string(data);
  z_stream zs{};
  const int window_bits = codec == v1::COMPRESSION_GZIP ? 15 + 16 : 15;
  if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return absl::InternalError("deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  const size_t produced = out.size() - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError("deflate did not finish");
  out.resize(produced);
  return out;
}

}  // namespace sonde::exporter
