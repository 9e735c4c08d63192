#pragma once
// HPACK Huffman decoding (RFC 7541 section 5.2) with a table peeking 11 bits at a time
// built once from the RFC code table. nghttp2 keeps its decoder private, and
// the degraded-mode HPACK decoder needs one.
#include <string>
#include <string_view>

namespace sonde::protocols::http2 {

// Appends the decoded form of `in` to `out`. Returns false on an EOS symbol
// or padding that is not a prefix of EOS (at most 7 one-bits); `out` then
// holds what was decoded before the error.
bool HuffmanDecode(std::string_view in, std::string& out);

// Encodes with the same table (used by tests and by the degraded decoder's
// table rebuild; never on the hot path).
std::string HuffmanEncode(std::string_view in);

}  // namespace sonde::protocols::http2
