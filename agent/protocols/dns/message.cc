#include "agent/protocols/dns/message.h"

namespace sonde::protocols::dns {
namespace {

uint16_t Be16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]));
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Reads the name at `*pos`, following compression pointers backwards only
// (forward or looping pointers are invalid). `*pos` ends after the name's
// bytes in place.
ParseStatus ReadName(std::string_view b, size_t* pos, std::string* out) {
  out->clear();
  size_t at = *pos;
  bool jumped = false;
  int jumps = 0;
  size_t wire_length = 0;
  while (true) {
    if (at >= b.size()) return ParseStatus::kNeedMore;
    const uint8_t len = static_cast<uint8_t>(b[at]);
    if (len == 0) {
      if (!jumped) *pos = at + 1;
      break;
    }
    if ((len & 0xC0) == 0xC0) {
      if (at + 1 >= b.size()) return ParseStatus::kNeedMore;
      const size_t target = static_cast<size_t>(((len & 0x3F) << 8) | static_cast<uint8_t>(b[at + 1]));
      if (target >= at || target < kHeaderBytes || ++jumps > 16) return ParseStatus::kInvalid;
      if (!jumped) *pos = at + 2;
      jumped = true;
      at = target;
      continue;
    }
    if ((len & 0xC0) != 0) return ParseStatus::kInvalid;  // 0x40/0x80: obsolete label types
    if (at + 1 + len > b.size()) return ParseStatus::kNeedMore;
    wire_length += 1u + len;
    if (wire_length + 1 > kMaxNameBytes) return ParseStatus::kInvalid;
    if (!out->empty()) out->push_back('.');
    for (size_t i = 0; i < len; ++i) {
      const char c = b[at + 1 + i];
      // Hostnames and service labels: letters, digits, '-', '_', '*'; anything else is binary noise.
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '*' || c == '/';
      if (!ok) return ParseStatus::kInvalid;
      out->push_back(Lower(c));
    }
    at += 1u + len;
  }
  if (out->empty()) out->push_back('.');
  return ParseStatus::kOk;
}

}  // namespace

ParseStatus ParseHeader(std::string_view b, Header* out) {
  if (b.size() < kHeaderBytes) return ParseStatus::kNeedMore;
  Header h;
  h.id = Be16(b, 0);
  const uint16_t flags = Be16(b, 2);
  h.response = (flags & 0x8000) != 0;
  h.opcode = static_cast<uint8_t>((flags >> 11) & 0xF);
  h.authoritative = (flags & 0x0400) != 0;
  h.truncated = (flags & 0x0200) != 0;
  h.recursion_desired = (flags & 0x0100) != 0;
  h.recursion_available = (flags & 0x0080) != 0;
  h.rcode = static_cast<uint8_t>(flags & 0xF);
  h.questions = Be16(b, 4);
  h.answers = Be16(b, 6);
  h.authorities = Be16(b, 8);
  h.additionals = Be16(b, 10);
  if (h.opcode == 3 || h.opcode > 6) return ParseStatus::kInvalid;
  *out = h;
  return ParseStatus::kOk;
}

ParseStatus ParseMessage(std::string_view b, Message* out) {
  Message m;
  const ParseStatus hs = ParseHeader(b, &m.header);
  if (hs != ParseStatus::kOk) return hs;
  if (m.header.questions == 0) {
    // Legal (some NOTIFY / UPDATE answers) but nothing to name: a message without a question.
    *out = std::move(m);
    return ParseStatus::kOk;
  }
  size_t pos = kHeaderBytes;
  const ParseStatus ns = ReadName(b, &pos, &m.name);
  if (ns != ParseStatus::kOk) return ns;
  if (pos + 4 > b.size()) return ParseStatus::kNeedMore;
  m.qtype = Be16(b, pos);
  m.qclass = Be16(b, pos + 2);
  if (m.qtype == 0) return ParseStatus::kInvalid;
  *out = std::move(m);
  return ParseStatus::kOk;
}

bool PlausibleMessage(const Message& m, bool want_response) {
  const Header& h = m.header;
  if (h.response != want_response) return false;
  if (h.opcode != 0 || h.questions != 1) return false;
  if (m.qclass != 1 && m.qclass != 3 && m.qclass != 4 && m.qclass != 255) return false;
  if (!want_response) {
    // A query carries no answers and at most an EDNS OPT (and a TSIG/COOKIE).
    return h.rcode == 0 && h.answers == 0 && h.authorities == 0 && h.additionals <= 2;
  }
  return h.rcode <= 10;
}

std::string TypeName(uint16_t t) {
  switch (t) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 33: return "SRV";
    case 35: return "NAPTR";
    case 39: return "DNAME";
    case 43: return "DS";
    case 46: return "RRSIG";
    case 48: return "DNSKEY";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    case 99: return "SPF";
    case 252: return "AXFR";
    case 255: return "ANY";
    case 257: return "CAA";
    default: return "TYPE" + std::to_string(t);
  }
}

std::string RcodeName(uint8_t rcode) {
  static constexpr const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                           "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};
  if (rcode < sizeof(kNames) / sizeof(kNames[0])) return kNames[rcode];
  return "RCODE" + std::to_string(rcode);
}

}  // namespace sonde::protocols::dns
