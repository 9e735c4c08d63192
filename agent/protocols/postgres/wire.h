#pragma once
// PostgreSQL frontend/backend protocol v3 framing, as pure functions over
// bytes: the untyped packets that open a connection (startup, SSLRequest,
// GSSENCRequest, CancelRequest), typed message headers (type byte + int32
// length that counts itself) and the few bodies Sonde reads.
#include <cstdint>
#include <string>
#include <string_view>

namespace sonde::protocols::postgres {

inline constexpr uint32_t kProtocolV3 = 196608;  // 3.0
inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint32_t kCancelRequestCode = 80877102;
inline constexpr uint32_t kMaxStartupLength = 10000;     // the server's MAX_STARTUP_PACKET_LENGTH
inline constexpr uint32_t kMaxMessageLength = 1u << 30;  // the server's PQ_LARGE_MESSAGE_LIMIT
inline constexpr size_t kHeaderBytes = 5;                // type + length

enum class ParseStatus : uint8_t { kOk, kNeedMore, kInvalid };

constexpr uint32_t ReadBe32(std::string_view b, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3]));
}

enum class StartupKind : uint8_t { kStartup, kSslRequest, kGssEncRequest, kCancel };

struct StartupPacket {
  StartupKind kind = StartupKind::kStartup;
  uint32_t length = 0;    // bytes of the whole packet
  std::string database;   // "database" parameter (defaults to the user name on the server)
  std::string user;       // only to default the database: never recorded as an attribute
  std::string application_name;
};

// An untyped opening packet at the start of `bytes` (needs it whole).
ParseStatus ParseStartup(std::string_view bytes, StartupPacket* out);

struct MessageHeader {
  char type = 0;
  uint32_t body_length = 0;  // bytes after the 5-byte header
};

// Is `type` a message the frontend (client) / backend (server) sends?
bool IsFrontendType(char type);
bool IsBackendType(char type);

// A typed message header at the start of `bytes` from the frontend
// (`frontend`) or the backend. Invalid: unknown type or impossible length.
ParseStatus ParseMessageHeader(std::string_view bytes, bool frontend, MessageHeader* out);

// A NUL-terminated string at `*pos` of `body`; advances past the NUL. When
// the body is a truncated prefix the rest is returned and false.
bool ReadCString(std::string_view body, size_t* pos, std::string_view* out);

// The fields of ErrorResponse/NoticeResponse Sonde keeps: never the message
// text (it quotes values: "Key (id)=(42) already exists").
struct ErrorFields {
  std::string_view severity;  // 'V' (non-localised), else 'S'
  std::string_view sqlstate;  // 'C'
};
bool ParseErrorFields(std::string_view body, ErrorFields* out);

// CommandComplete's tag "UPDATE 3" / "INSERT 0 1" / "SELECT 5": the row count
// (the last number), -1 when the tag carries none ("BEGIN").
int64_t RowsFromTag(std::string_view tag);

}  // namespace sonde::protocols::postgres
