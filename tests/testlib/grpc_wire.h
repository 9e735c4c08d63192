#pragma once
// What a hostile gRPC client can send that a generated stub would not: a
// message that claims gzip compression and inflates to far more than its wire
// size, sent by curl over HTTP/2 (prior knowledge) as gRPC framing.
#include <zlib.h>

#include <cstdio>
#include <cstdint>
#include <string>

namespace sonde::testing {

// A gRPC length-prefixed message (compressed flag 1) whose gzip payload
// inflates to protobuf field 15 holding `zeros` zero bytes (an unknown field
// of any request type). Compressed in 1 MiB steps: never held whole here.
inline std::string GzipBombGrpcMessage(size_t zeros) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out;
  auto feed = [&](const std::string& in, int flush) {
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    do {
      char buf[65536];
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof(buf);
      deflate(&zs, flush);
      out.append(buf, sizeof(buf) - zs.avail_out);
    } while (zs.avail_out == 0);
  };
  std::string head = "\x7a";
  for (uint64_t n = zeros;; n >>= 7) {
    if (n < 0x80) {
      head.push_back(static_cast<char>(n));
      break;
    }
    head.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  feed(head, Z_NO_FLUSH);
  const std::string block(1u << 20, '\0');
  for (size_t done = 0; done < zeros; done += block.size()) feed(block, Z_NO_FLUSH);
  feed("", Z_FINISH);
  deflateEnd(&zs);
  std::string framed(1, '\x01');
  const auto n = static_cast<uint32_t>(out.size());
  for (int shift = 24; shift >= 0; shift -= 8) framed.push_back(static_cast<char>((n >> shift) & 0xff));
  return framed + out;
}

// POSTs the gRPC-framed file to http://127.0.0.1:<port>/<method> with curl
// (grpc-encoding: gzip); returns the response head and trailers as curl
// prints them ("HTTP/2 200", "grpc-status: 8", ...), or curl's error.
inline std::string CurlGrpc(int port, const std::string& method, const std::string& body_file) {
  const std::string cmd =
      "curl -sS -o /dev/null -D - --max-time 60 --http2-prior-knowledge -H 'content-type: application/grpc' "
      "-H 'grpc-encoding: gzip' -H 'te: trailers' --data-binary @" +
      body_file + " http://127.0.0.1:" + std::to_string(port) + "/" + method + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace sonde::testing
