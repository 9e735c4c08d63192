#pragma once
// HPACK Huffman decoding (RFC 7541 section 5.2). nghttp2 keeps its decoder
// private, and the HPACK decoders here need one.
//
// The decoder peeks kHuffmanPeekBits of the bit stream at a time; one lookup
// in a table built once from the RFC code table yields every symbol whose code
// fits in those bits (up to three) and how many bits they used, so the hot
// loop is one load, one 4-byte store and one shift per lookup. Codes longer
// than the peek width (rare: bytes outside printable ASCII and a few
// punctuation characters) walk the code tree bit by bit.
#include <cstddef>
#include <string>
#include <string_view>

namespace sonde::protocols::http2 {

// Upper bound of the decoded size of `encoded_size` Huffman bytes plus the
// slack HuffmanDecodeTo may write past the decoded bytes (the shortest code is
// 5 bits, and the hot loop stores 4 bytes at a time).
// (HuffmanDecodeFast, in huffman_fast.h, may also store one symbol made of
// bits past the end of a malformed string before handing it over.)
constexpr size_t HuffmanDecodedBound(size_t encoded_size) { return encoded_size * 8 / 5 + 8; }

// Decodes `in` to `out`, which must have room for HuffmanDecodedBound(in.size())
// bytes; `written` receives the decoded size. Returns false on an EOS symbol
// or padding that is not a prefix of EOS (at most 7 one-bits); `written` then
// counts what was decoded before the error.
bool HuffmanDecodeTo(std::string_view in, char* out, size_t& written);

// Appends the decoded form of `in` to `out` (same rules as HuffmanDecodeTo;
// on error `out` holds what was decoded before it).
bool HuffmanDecode(std::string_view in, std::string& out);

// Encodes with the RFC table (tests and the tolerant decoder's table rebuild;
// never on the hot path).
std::string HuffmanEncode(std::string_view in);

}  // namespace sonde::protocols::http2
