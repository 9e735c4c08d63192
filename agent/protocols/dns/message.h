#pragma once
// DNS messages (RFC 1035) as pure functions over bytes: the 12-byte header,
// the first question (name, type, class) and, over TCP, the two-byte length
// prefix. Answers are counted from the header, never decoded.
#include <cstdint>
#include <string>
#include <string_view>

namespace sonde::protocols::dns {

inline constexpr size_t kHeaderBytes = 12;
inline constexpr size_t kMaxNameBytes = 255;

enum class ParseStatus : uint8_t { kOk, kNeedMore, kInvalid };

struct Header {
  uint16_t id = 0;
  bool response = false;  // QR
  uint8_t opcode = 0;     // 0 QUERY, 1 IQUERY, 2 STATUS, 4 NOTIFY, 5 UPDATE
  bool authoritative = false;
  bool truncated = false;  // TC: the answer did not fit the datagram
  bool recursion_desired = false;
  bool recursion_available = false;
  uint8_t rcode = 0;
  uint16_t questions = 0, answers = 0, authorities = 0, additionals = 0;
};

struct Message {
  Header header;
  std::string name;  // first question, lowercased, dotted, no trailing dot ("." for the root)
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

ParseStatus ParseHeader(std::string_view bytes, Header* out);

// A whole message (one UDP datagram, or one TCP frame without its prefix).
// Invalid when the header is impossible or the question does not parse.
// A prefix cut inside the question (capture limit) is kNeedMore.
ParseStatus ParseMessage(std::string_view bytes, Message* out);

// Does `bytes` look like a query (`want_response` false) or a response a
// conservative inference can trust? Strict: one question, sane counts and
// flags, a well-formed name, a known class.
bool PlausibleMessage(const Message& m, bool want_response);

// "A", "AAAA", "TYPE65280"...
std::string TypeName(uint16_t qtype);
// "NOERROR", "NXDOMAIN", "RCODE12"...
std::string RcodeName(uint8_t rcode);

}  // namespace sonde::protocols::dns
