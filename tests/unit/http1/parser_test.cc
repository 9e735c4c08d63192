// The vectorised head scanner and parser against plain byte-at-a-time
// references, on random and mutated input: same line ends, same separators,
// same verdicts and the same header fields.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent/protocols/http1/line_scanner.h"
#include "agent/protocols/http1/parser.h"

namespace sonde::protocols::http1 {
namespace {

// Bytes that matter to the scanner, over-represented.
std::string RandomBytes(std::mt19937& rng, size_t n) {
  static constexpr char kInteresting[] = {'\n', ':', '\r', ' ', '\t', 'A', 'z', '-', '(', '@', '\x7f', '\x80', '\0'};
  std::string s(n, '\0');
  for (char& c : s) {
    const unsigned r = rng() % 4;
    c = r == 0 ? kInteresting[rng() % sizeof(kInteresting)] : static_cast<char>(rng() % 256);
  }
  return s;
}

constexpr ScanIsa kAllIsas[] = {ScanIsa::kScalar, ScanIsa::kSse2, ScanIsa::kAvx2, ScanIsa::kAvx512};

template <ScanIsa kIsa>
void CheckScanner(const std::string& buf, std::mt19937& rng) {
  constexpr int kVector = static_cast<int>(kIsa);
  BasicLineScanner<kIsa> scanner(buf);
  size_t pos = rng() % 3;
  while (true) {
    size_t lf = 0, colon = 0;
    const bool got = scanner.Line(pos, &lf, &colon);
    size_t want_lf = std::string::npos, want_colon = std::string::npos;
    for (size_t i = pos; i < buf.size(); ++i) {
      if (buf[i] == '\n') {
        want_lf = i;
        break;
      }
      if (buf[i] == ':' && want_colon == std::string::npos) want_colon = i;
    }
    ASSERT_EQ(got, want_lf != std::string::npos) << "vector=" << kVector << " pos=" << pos << " size=" << buf.size();
    if (!got) break;
    ASSERT_EQ(lf, want_lf) << "vector=" << kVector << " pos=" << pos;
    ASSERT_EQ(colon, want_colon) << "vector=" << kVector << " pos=" << pos;
    if constexpr (BasicLineScanner<kIsa>::kClassifies) {
      if (colon != std::string::npos) {
        bool all = true;
        for (size_t i = pos; i < colon; ++i) all = all && IsTokenChar(static_cast<unsigned char>(buf[i]));
        ASSERT_EQ(scanner.NameIsToken(), all) << "vector=" << kVector << " name " << pos << ".." << colon;
      }
    }
    // Token check of a random range ending at the line's end (as a name would).
    const size_t begin = lf - std::min<size_t>(lf, rng() % 40);
    bool all = true;
    for (size_t i = begin; i < lf; ++i) all = all && IsTokenChar(static_cast<unsigned char>(buf[i]));
    ASSERT_EQ(scanner.AllTchar(begin, lf), all) << "range " << begin << ".." << lf;
    pos = lf + 1 + rng() % 3;  // sometimes skip bytes, as after a folded line
  }
}

TEST(LineScanner, EveryInstructionSetAgreesWithAByteLoopOnRandomBuffers) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; ++round) {
    // Sometimes long lines, so names and lines span several 64-byte windows.
    const std::string buf = RandomBytes(rng, round % 10 == 0 ? rng() % 1000 : rng() % 300);
    CheckScanner<ScanIsa::kScalar>(buf, rng);
    CheckScanner<ScanIsa::kSse2>(buf, rng);
    if (ScanIsaSupported(ScanIsa::kAvx2)) CheckScanner<ScanIsa::kAvx2>(buf, rng);
    if (ScanIsaSupported(ScanIsa::kAvx512)) CheckScanner<ScanIsa::kAvx512>(buf, rng);
  }
}

// Lines of tchar bytes with one byte value at one place, around and across
// window boundaries: every scanner classifies every byte value as IsTokenChar.
template <ScanIsa kIsa>
void CheckEveryByteInNames() {
  for (size_t start : {0, 1, 30, 60, 63, 64, 100}) {
    for (size_t len : {1, 5, 16, 33, 64, 70, 130}) {
      for (int c = 0; c < 256; ++c) {
        if (c == '\n' || c == ':') continue;
        for (size_t at : {size_t{0}, len / 2, len - 1}) {
          std::string buf(start, 'x');
          buf.back() = '\n';  // when start > 0, a line before the name
          if (start == 0) buf.clear();
          const size_t name_at = buf.size();
          std::string name(len, 'a');
          name[at] = static_cast<char>(c);
          buf += name + ": value\r\n\r\n";
          BasicLineScanner<kIsa> scanner(buf);
          size_t lf = 0, colon = 0, pos = 0;
          if (name_at > 0) {
            ASSERT_TRUE(scanner.Line(0, &lf, &colon));
            pos = lf + 1;
          }
          ASSERT_EQ(pos, name_at);
          ASSERT_TRUE(scanner.Line(pos, &lf, &colon));
          ASSERT_EQ(colon, name_at + len);
          const bool want = IsTokenChar(static_cast<unsigned char>(c));
          if constexpr (BasicLineScanner<kIsa>::kClassifies) {
            ASSERT_EQ(scanner.NameIsToken(), want) << "isa " << static_cast<int>(kIsa) << " byte " << c
                                                   << " start " << start << " len " << len << " at " << at;
          }
          ASSERT_EQ(scanner.AllTchar(pos, colon), want) << "byte " << c << " len " << len;
        }
      }
    }
  }
}

TEST(LineScanner, EveryInstructionSetClassifiesEveryByte) {
  CheckEveryByteInNames<ScanIsa::kScalar>();
  CheckEveryByteInNames<ScanIsa::kSse2>();
  if (ScanIsaSupported(ScanIsa::kAvx2)) CheckEveryByteInNames<ScanIsa::kAvx2>();
  if (ScanIsaSupported(ScanIsa::kAvx512)) CheckEveryByteInNames<ScanIsa::kAvx512>();
}

TEST(LineScanner, TokenCharsAreExactlyRfc9110) {
  const std::string tchar_specials = "!#$%&'*+-.^_`|~";
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool want = alnum || (c != 0 && tchar_specials.find(static_cast<char>(c)) != std::string::npos);
    EXPECT_EQ(IsTokenChar(static_cast<unsigned char>(c)), want) << c;
    // The vector check, with the byte at every position of a 32-byte name.
    for (size_t at = 0; at < 32; at += 7) {
      std::string name(40, 'a');
      name[at] = static_cast<char>(c);
      BasicLineScanner<ScanIsa::kSse2> scanner(name);
      EXPECT_EQ(scanner.AllTchar(0, 32), want) << "byte " << c << " at " << at;
      EXPECT_TRUE(scanner.AllTchar(at + 1, 32)) << "bytes before the range must not count";
    }
  }
}

// Reference head parser: one line at a time with memchr, as the parser was
// written before it was vectorised.
struct RefField {
  std::string name, value;
  bool operator==(const RefField&) const = default;
};

ParseStatus ReferenceHeaders(std::string_view buf, size_t pos, std::vector<RefField>* out, size_t* head_len) {
  while (true) {
    const void* lf = std::memchr(buf.data() + pos, '\n', buf.size() - pos);
    if (lf == nullptr) return buf.size() > kMaxHeadBytes ? ParseStatus::kInvalid : ParseStatus::kNeedMoreData;
    const size_t end = static_cast<size_t>(static_cast<const char*>(lf) - buf.data());
    std::string_view line = buf.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') continue;
    size_t colon = 0;
    while (colon < line.size() && IsTokenChar(static_cast<unsigned char>(line[colon]))) ++colon;
    if (colon == 0 || colon >= line.size() || line[colon] != ':') return ParseStatus::kInvalid;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (out->size() >= kMaxHeaders) return ParseStatus::kInvalid;
    out->push_back({std::string(line.substr(0, colon)), std::string(value)});
  }
  *head_len = pos;
  return ParseStatus::kOk;
}

std::string ValidHead(std::mt19937& rng) {
  static const char* kNames[] = {"Host", "User-Agent", "X-Kong-Request-Id", "traceparent", "Accept",
                                 "Content-Type", "X-A-Very-Long-Header-Name-Beyond-Thirty-Two-Bytes"};
  std::string head = "GET /p/" + std::to_string(rng() % 1000) + "?q=1 HTTP/1.1\r\n";
  const int n = static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i) {
    head += kNames[rng() % std::size(kNames)];
    head += rng() % 3 == 0 ? ":" : ": ";
    head += std::string(rng() % 70, static_cast<char>('a' + rng() % 26));
    if (rng() % 5 == 0) head += " \t";
    head += rng() % 4 == 0 ? "\n" : "\r\n";
  }
  return head + "\r\n";
}

TEST(Http1Parser, AgreesWithTheReferenceOnMutatedHeads) {
  std::mt19937 rng(11);
  int ok = 0, invalid = 0, more = 0;
  for (int round = 0; round < 30000; ++round) {
    std::string buf = ValidHead(rng);
    const int mutations = static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !buf.empty(); ++m) {
      const size_t at = rng() % buf.size();
      switch (rng() % 3) {
        case 0: buf[at] = RandomBytes(rng, 1)[0]; break;
        case 1: buf.erase(at, 1); break;
        default: buf.insert(at, RandomBytes(rng, 1 + rng() % 3)); break;
      }
    }
    if (rng() % 4 == 0) buf.resize(rng() % (buf.size() + 1));  // truncated capture
    MessageHead head;
    const ParseStatus got = ParseRequestHead(buf, &head);
    // The request line is parsed the same way by both; compare what follows it.
    const size_t first_lf = buf.find('\n');
    if (first_lf == std::string::npos) continue;  // not even a request line
    std::vector<RefField> want_fields;
    size_t want_len = 0;
    const ParseStatus want = ReferenceHeaders(buf, first_lf + 1, &want_fields, &want_len);
    MessageHead line_only;
    if (ParseRequestHead(buf.substr(0, first_lf + 1) + "\r\n", &line_only) == ParseStatus::kInvalid) {
      ASSERT_EQ(got, ParseStatus::kInvalid) << "a bad request line must fail the head: " << buf;
      continue;
    }
    if (got == ParseStatus::kInvalid && want == ParseStatus::kNeedMoreData) {
      // The parser rejects a bad name without waiting for its line's end:
      // completing the line must not make it valid.
      std::vector<RefField> ignored;
      size_t ignored_len = 0;
      ASSERT_EQ(ReferenceHeaders(buf + "\r\n\r\n", first_lf + 1, &ignored, &ignored_len), ParseStatus::kInvalid)
          << buf;
      continue;
    }
    if (got == ParseStatus::kOk) {
      ++ok;
      ASSERT_EQ(want, ParseStatus::kOk) << buf;
      ASSERT_EQ(head.head_len, want_len);
      ASSERT_EQ(head.headers.size(), want_fields.size()) << buf;
      for (size_t i = 0; i < want_fields.size(); ++i) {
        EXPECT_EQ(std::string(head.headers[i].name), want_fields[i].name);
        EXPECT_EQ(std::string(head.headers[i].value), want_fields[i].value);
      }
    } else {
      ASSERT_EQ(got, want) << buf;
      (got == ParseStatus::kInvalid ? invalid : more) += 1;
    }
  }
  // The generator must exercise every verdict.
  EXPECT_GT(ok, 1000);
  EXPECT_GT(invalid, 1000);
  EXPECT_GT(more, 500);
}

// Every head scanner gives the scalar one's verdict and fields, on mutated
// and truncated request and response heads (and heads long enough to span
// several 64-byte windows per line).
TEST(Http1Parser, EveryInstructionSetAgreesWithScalarOnMutatedHeads) {
  std::mt19937 rng(23);
  int checked = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string buf = ValidHead(rng);
    const bool response = rng() % 2 == 0;
    if (response) buf.replace(0, buf.find('\n') + 1, "HTTP/1.1 200 OK\r\n");
    if (rng() % 8 == 0) {
      const size_t at = buf.find('\n') + 1;
      buf.insert(at, "X-Long-" + std::string(rng() % 200, 'N') + ": " + std::string(rng() % 200, 'v') + "\r\n");
    }
    const int mutations = static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !buf.empty(); ++m) {
      const size_t at = rng() % buf.size();
      switch (rng() % 3) {
        case 0: buf[at] = RandomBytes(rng, 1)[0]; break;
        case 1: buf.erase(at, 1); break;
        default: buf.insert(at, RandomBytes(rng, 1 + rng() % 3)); break;
      }
    }
    if (rng() % 4 == 0) buf.resize(rng() % (buf.size() + 1));
    MessageHead want;
    const auto parse = [&](ScanIsa isa, MessageHead* head) {
      return response ? ParseResponseHeadWith(isa, buf, head) : ParseRequestHeadWith(isa, buf, head);
    };
    const ParseStatus want_status = parse(ScanIsa::kScalar, &want);
    for (ScanIsa isa : kAllIsas) {
      if (!ScanIsaSupported(isa)) continue;
      MessageHead got;
      ASSERT_EQ(parse(isa, &got), want_status) << "isa " << static_cast<int>(isa) << ": " << buf;
      ++checked;
      if (want_status != ParseStatus::kOk) continue;
      ASSERT_EQ(got.head_len, want.head_len);
      ASSERT_EQ(got.headers.size(), want.headers.size());
      for (size_t i = 0; i < want.headers.size(); ++i) {
        EXPECT_EQ(got.headers[i].name, want.headers[i].name);
        EXPECT_EQ(got.headers[i].value, want.headers[i].value);
      }
      EXPECT_EQ(got.host, want.host);
      EXPECT_EQ(got.content_length, want.content_length);
      EXPECT_EQ(got.has_content_length, want.has_content_length);
      EXPECT_EQ(got.chunked, want.chunked);
      EXPECT_EQ(got.connection_close, want.connection_close);
      EXPECT_EQ(got.connection_keep_alive, want.connection_keep_alive);
      EXPECT_EQ(got.expect_continue, want.expect_continue);
      EXPECT_EQ(got.method, want.method);
      EXPECT_EQ(got.target, want.target);
      EXPECT_EQ(got.status, want.status);
    }
  }
  EXPECT_GT(checked, 40000);
}

TEST(Http1Parser, DispatchPicksASupportedScanner) {
  EXPECT_TRUE(ScanIsaSupported(ScanIsa::kScalar));
  EXPECT_TRUE(ScanIsaSupported(BestScanIsa()));
  std::printf("head scanner: %d (0 scalar, 1 SSE2, 2 AVX2, 3 AVX-512)\n", static_cast<int>(BestScanIsa()));
}

// Header values the parser acts on compare case-insensitively, byte-exactly:
// every position of every value, flipped in case or replaced by a byte that
// only differs in the 0x20 bit, against a byte-wise rule.
TEST(Http1Parser, DerivedHeaderValuesCompareExactlyIgnoringCase) {
  const auto lower_eq = [](std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = (s[i] >= 'A' && s[i] <= 'Z') ? static_cast<char>(s[i] + 32) : s[i];
      if (c != lower[i]) return false;
    }
    return true;
  };
  for (const std::string_view want : {"keep-alive", "close"}) {
    for (size_t at = 0; at < want.size(); ++at) {
      for (int c = 1; c < 256; ++c) {
        if (c == '\n' || c == '\r' || c == ',') continue;
        std::string value(want);
        value[at] = static_cast<char>(c);
        MessageHead head;
        const std::string buf = "GET / HTTP/1.1\r\nConnection: " + value + "\r\n\r\n";
        ASSERT_EQ(ParseRequestHead(buf, &head), ParseStatus::kOk) << buf;
        const std::string_view trimmed = head.headers[0].value;
        const bool exact = lower_eq(trimmed, want);
        // One token (no commas): the flag is set exactly when it matches.
        EXPECT_EQ(want == "close" ? head.connection_close : head.connection_keep_alive, exact) << value;
      }
    }
  }
  for (const char* name : {"HOST", "Host", "hOsT"}) {
    MessageHead head;
    ASSERT_EQ(ParseRequestHead(std::string("GET / HTTP/1.1\r\n") + name + ": h\r\n\r\n", &head), ParseStatus::kOk);
    EXPECT_EQ(head.host, "h") << name;
  }
  for (const char* name : {"Hosu", "Hos", "Hostx", "Expecu"}) {
    MessageHead head;
    ASSERT_EQ(ParseRequestHead(std::string("GET / HTTP/1.1\r\n") + name + ": h\r\n\r\n", &head), ParseStatus::kOk);
    EXPECT_EQ(head.host, "") << name;
  }
  MessageHead head;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nEXPECT: 100-Continue\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n", &head),
            ParseStatus::kOk);
  EXPECT_TRUE(head.expect_continue);
  EXPECT_TRUE(head.chunked);
}

}  // namespace
}  // namespace sonde::protocols::http1
