#include "agent/protocols/http2/huffman.h"

#include <array>
#include <cstdint>
#include <vector>

namespace sonde::protocols::http2 {
namespace {

struct Code {
  uint32_t code;
  uint8_t bits;
};
constexpr Code kCodes[257] = {
#include "agent/protocols/http2/huffman_table.inc"
};

enum EntryFlags : uint8_t { kEmit = 1, kFail = 2, kAccept = 4 };
struct Entry {
  uint8_t next;  // internal node reached after the nibble
  uint8_t flags;
  uint8_t sym;
};

// Internal nodes of the code tree are the decoder states (256 of them for
// 257 leaves); a child is either another node or a leaf symbol.
struct Machine {
  std::array<std::array<Entry, 16>, 256> table{};

  Machine() {
    struct Node {
      int child[2] = {-1, -1};  // >= 0: node id; <= -2: leaf symbol -(sym + 2)
    };
    std::vector<Node> nodes(1);
    for (int sym = 0; sym < 257; ++sym) {
      int cur = 0;
      for (int b = kCodes[sym].bits - 1; b >= 0; --b) {
        const int bit = (kCodes[sym].code >> b) & 1;
        if (b == 0) {
          nodes[cur].child[bit] = -(sym + 2);
        } else {
          if (nodes[cur].child[bit] == -1) {
            nodes[cur].child[bit] = static_cast<int>(nodes.size());
            nodes.emplace_back();
          }
          cur = nodes[cur].child[bit];
        }
      }
    }
    // Accepting states: the root and nodes reached from it by 1..7 one-bits
    // (valid padding is a prefix of EOS, shorter than a byte).
    std::vector<bool> accepting(nodes.size(), false);
    accepting[0] = true;
    for (int cur = 0, depth = 0; depth < 7 && nodes[cur].child[1] >= 0; ++depth) {
      cur = nodes[cur].child[1];
      accepting[cur] = true;
    }
    for (size_t s = 0; s < nodes.size() && s < 256; ++s) {
      for (int nibble = 0; nibble < 16; ++nibble) {
        Entry e{};
        int cur = static_cast<int>(s);
        for (int b = 3; b >= 0; --b) {
          const int next = nodes[cur].child[(nibble >> b) & 1];
          if (next <= -2) {
            const int sym = -next - 2;
            if (sym == 256) {
              e.flags = kFail;
              break;
            }
            e.flags |= kEmit;  // codes are >= 5 bits: at most one per nibble
            e.sym = static_cast<uint8_t>(sym);
            cur = 0;
          } else {
            cur = next;
          }
        }
        if ((e.flags & kFail) == 0) {
          e.next = static_cast<uint8_t>(cur);
          if (accepting[cur]) e.flags |= kAccept;
        }
        table[s][nibble] = e;
      }
    }
  }
};

const Machine& GetMachine() {
  static const Machine machine;
  return machine;
}

}  // namespace

bool HuffmanDecode(std::string_view in, std::string& out) {
  const auto& table = GetMachine().table;
  const size_t base = out.size();
  out.resize(base + in.size() * 8 / 5 + 1);
  char* dst = out.data() + base;
  uint8_t state = 0;
  bool accept = true;
  bool ok = true;
  for (const char c : in) {
    const auto byte = static_cast<uint8_t>(c);
    const Entry& hi = table[state][byte >> 4];
    if (hi.flags & kFail) { ok = false; break; }
    if (hi.flags & kEmit) *dst++ = static_cast<char>(hi.sym);
    const Entry& lo = table[hi.next][byte & 0xf];
    if (lo.flags & kFail) { ok = false; break; }
    if (lo.flags & kEmit) *dst++ = static_cast<char>(lo.sym);
    state = lo.next;
    accept = (lo.flags & kAccept) != 0;
  }
  out.resize(static_cast<size_t>(dst - out.data()));
  return ok && accept;
}

std::string HuffmanEncode(std::string_view in) {
  std::string out;
  uint64_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const Code& code = kCodes[static_cast<uint8_t>(c)];
    acc = (acc << code.bits) | code.code;
    bits += code.bits;
    while (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0) {
    acc = (acc << (8 - bits)) | ((1u << (8 - bits)) - 1);  // pad with EOS prefix
    out.push_back(static_cast<char>(acc & 0xff));
  }
  return out;
}

}  // namespace sonde::protocols::http2
