#include "agent/otlp/rpc_status.h"

#include <nlohmann/json.hpp>

namespace sonde::otlp {
namespace {

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutTag(std::string& out, uint32_t field, uint32_t wire_type) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | wire_type);
}

void PutBytes(std::string& out, uint32_t field, std::string_view bytes) {
  PutTag(out, field, 2);
  PutVarint(out, bytes.size());
  out.append(bytes);
}

constexpr std::string_view kRetryInfoType = "type.googleapis.com/google.rpc.RetryInfo";

}  // namespace

std::string EncodeRpcStatusProto(RpcCode code, std::string_view message, int retry_after_s) {
  std::string out;
  if (code != RpcCode::kOk) {
    PutTag(out, 1, 0);
    // int32 fields are varint-encoded; negative values never occur here.
    PutVarint(out, static_cast<uint64_t>(code));
  }
  if (!message.empty()) PutBytes(out, 2, message);
  if (retry_after_s > 0) {
    std::string duration;  // google.protobuf.Duration {seconds = 1}
    PutTag(duration, 1, 0);
    PutVarint(duration, static_cast<uint64_t>(retry_after_s));
    std::string retry_info;  // google.rpc.RetryInfo {retry_delay = 1}
    PutBytes(retry_info, 1, duration);
    std::string any;  // google.protobuf.Any {type_url = 1, value = 2}
    PutBytes(any, 1, kRetryInfoType);
    PutBytes(any, 2, retry_info);
    PutBytes(out, 3, any);
  }
  return out;
}

std::string EncodeRpcStatusJson(RpcCode code, std::string_view message, int retry_after_s) {
  nlohmann::json j = nlohmann::json::object();
  j["code"] = static_cast<int32_t>(code);
  j["message"] = std::string(message);
  if (retry_after_s > 0) {
    j["details"] = nlohmann::json::array(
        {{{"@type", kRetryInfoType}, {"retryDelay", std::to_string(retry_after_s) + "s"}}});
  }
  // Replace invalid UTF-8 (messages may quote client input) instead of throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sonde::otlp
