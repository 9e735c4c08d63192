#include "agent/otlp/body_codec.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "agent/otlp/json_codec.h"
#include "agent/otlp/text_util.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"

namespace sonde::otlp {

absl::StatusOr<BodyFormat> ParseContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  media = StripWhitespace(media);
  if (EqualsIgnoreCase(media, "application/x-protobuf") ||
      EqualsIgnoreCase(media, "application/protobuf")) {
    return BodyFormat::kProtobuf;
  }
  if (EqualsIgnoreCase(media, "application/json")) return BodyFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported content type '", Str(content_type),
                   "': use application/x-protobuf or application/json"));
}

std::string_view ContentTypeOf(BodyFormat format) {
  return format == BodyFormat::kJson ? "application/json" : "application/x-protobuf";
}

absl::StatusOr<std::string> InflateBounded(std::string_view compressed, size_t max_out) {
  z_stream zs{};
  // 15 window bits + 32: accept both gzip and zlib headers.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2 failed");
  struct Closer {
    z_stream* z;
    ~Closer() { inflateEnd(z); }
  } closer{&zs};

  std::string out;
  std::array<unsigned char, 64 * 1024> chunk;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  if (compressed.size() > std::numeric_limits<uInt>::max()) {
    return absl::ResourceExhaustedError("compressed body too large");
  }
  for (;;) {
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(chunk.size());
    int rc = inflate(&zs, Z_NO_FLUSH);
    size_t produced = chunk.size() - zs.avail_out;
    if (out.size() + produced > max_out) {
      return absl::ResourceExhaustedError(
          absl::StrCat("decompressed body exceeds ", max_out, " bytes"));
    }
    out.append(reinterpret_cast<const char*>(chunk.data()), produced);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) return out;
      // Concatenated gzip members (RFC 1952 allows them): continue with the next.
      if (inflateReset(&zs) != Z_OK) return absl::InvalidArgumentError("corrupt gzip body");
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      return absl::InvalidArgumentError("truncated gzip body");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt gzip body: ", zs.msg != nullptr ? zs.msg : "inflate error"));
    }
  }
}

std::string GzipCompress(std::string_view plain) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out;
  out.resize(deflateBound(&zs, plain.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  zs.avail_in = static_cast<uInt>(plain.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

absl::Status DecodeBody(std::string_view body, BodyFormat format,
                        google::protobuf::Message* out) {
  if (format == BodyFormat::kJson) return ParseOtlpJson(body, out);
  google::protobuf::io::ArrayInputStream input(body.data(), static_cast<int>(body.size()));
  google::protobuf::io::CodedInputStream coded(&input);
  // Default recursion limit (100) bounds nesting of AnyValue arrays/kvlists.
  if (!out->ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed protobuf ", out->GetDescriptor()->name()));
  }
  return absl::OkStatus();
}

std::string EncodeBody(const google::protobuf::Message& message, BodyFormat format) {
  if (format == BodyFormat::kProtobuf) return message.SerializeAsString();
  // Responses carry no id fields, so protobuf's own proto3-JSON printer is exact
  // (lowerCamelCase keys, int64 as strings, default values omitted).
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

}  // namespace sonde::otlp
