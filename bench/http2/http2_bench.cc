// HTTP/2 speed: HPACK decode throughput (MB/s of header blocks, one core;
// goal >= 300 MB/s) for both backends, Huffman alone, and frame parse
// throughput of a whole session (gRPC calls with 64 B / 4 KiB bodies).
//   build-*/bench/http2/http2_bench
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nghttp2/nghttp2.h>
#include <nlohmann/json.hpp>

#include "agent/protocols/http2/hpack.h"
#include "agent/protocols/http2/huffman.h"
#include "agent/protocols/http2/huffman_fast.h"
#include "agent/protocols/http2/session.h"
#include "agent/protocols/http2/tolerant_hpack.h"

namespace sonde::protocols::http2 {
namespace {

namespace fs = std::filesystem;
using Story = std::vector<std::string>;  // header blocks sharing one context

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The public HPACK stories (real browsing header sets from six encoders).
const std::vector<Story>& Stories() {
  static const std::vector<Story> stories = [] {
    std::vector<Story> out;
    const fs::path root = fs::path(SONDE_SOURCE_DIR) / ".." / "shared" / "testdata" / "hpack";
    if (!fs::is_directory(root)) return out;
    for (const auto& dir : fs::directory_iterator(root)) {
      if (!dir.is_directory() || dir.path().filename() == "raw-data") continue;
      for (const auto& file : fs::directory_iterator(dir.path())) {
        if (file.path().extension() != ".json") continue;
        std::ifstream in(file.path());
        const auto json = nlohmann::json::parse(in);
        Story story;
        for (const auto& c : json.at("cases")) story.push_back(Unhex(c.at("wire").get<std::string>()));
        out.push_back(std::move(story));
      }
    }
    return out;
  }();
  return stories;
}

int64_t StoryBytes() {
  int64_t n = 0;
  for (const Story& s : Stories()) {
    for (const std::string& b : s) n += static_cast<int64_t>(b.size());
  }
  return n;
}

// Cold-context worst case: every story starts with an empty table, so most
// fields are Huffman literals. Arg 0: sonde backend, 1: nghttp2 backend.
void BM_HpackDecode_Stories(benchmark::State& state) {
  if (Stories().empty()) {
    state.SkipWithError("HPACK stories not found");
    return;
  }
  const auto backend = state.range(0) == 0 ? HpackBackend::kSonde : HpackBackend::kNghttp2;
  state.SetLabel(state.range(0) == 0 ? "sonde" : "nghttp2");
  DecodedFieldList out;
  int64_t fields = 0;
  for (auto _ : state) {
    for (const Story& story : Stories()) {
      HpackDecoder decoder(backend);
      for (const std::string& block : story) {
        benchmark::DoNotOptimize(decoder.Decode(block, out));
        fields += static_cast<int64_t>(out.count);
      }
    }
  }
  state.SetBytesProcessed(state.iterations() * StoryBytes());
  state.counters["fields/s"] = benchmark::Counter(static_cast<double>(fields),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HpackDecode_Stories)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// Steady state on a gateway connection: the same gRPC/REST header sets again
// and again through nghttp2's encoder, so most fields are 1-byte indexed.
void BM_HpackDecode_SteadyState(benchmark::State& state) {
  const auto backend = state.range(0) == 0 ? HpackBackend::kSonde : HpackBackend::kNghttp2;
  state.SetLabel(state.range(0) == 0 ? "sonde" : "nghttp2");
  nghttp2_hd_deflater* deflater = nullptr;
  nghttp2_hd_deflate_new(&deflater, 4096);
  std::vector<std::string> blocks;
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", i % 3 ? "POST" : "GET"},
        {":scheme", "http"},
        {":path", i % 3 ? "/orders.v1.Orders/Get" + std::to_string(i % 7)
                        : "/api/v1/users/" + std::to_string(i)},
        {":authority", "backend.internal:8080"},
        {"content-type", i % 3 ? "application/grpc" : "application/json"},
        {"user-agent", "grpc-go/1.62.0"},
        {"te", "trailers"},
        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-" + std::to_string(1000000000000000 + i) +
                            "-01"},
        {"x-request-id", "5f0c1e2a-" + std::to_string(100000 + i)}};
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater, nva.data(), nva.size()), '\0');
    const auto n = nghttp2_hd_deflate_hd(deflater, reinterpret_cast<uint8_t*>(out.data()),
                                         out.size(), nva.data(), nva.size());
    out.resize(static_cast<size_t>(n));
    blocks.push_back(std::move(out));
  }
  nghttp2_hd_deflate_del(deflater);
  int64_t bytes = 0;
  for (const auto& b : blocks) bytes += static_cast<int64_t>(b.size());
  DecodedFieldList out;
  for (auto _ : state) {
    HpackDecoder decoder(backend);
    for (const std::string& block : blocks) benchmark::DoNotOptimize(decoder.Decode(block, out));
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["blocks/s"] = benchmark::Counter(1000.0 * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HpackDecode_SteadyState)->Arg(0)->Arg(1);

void BM_HpackDecode_TolerantStories(benchmark::State& state) {
  if (Stories().empty()) {
    state.SkipWithError("HPACK stories not found");
    return;
  }
  DecodedFieldList out;
  for (auto _ : state) {
    for (const Story& story : Stories()) {
      TolerantHpackDecoder decoder;
      for (const std::string& block : story) {
        out.Clear();
        benchmark::DoNotOptimize(decoder.Decode(block, out));
      }
    }
  }
  state.SetBytesProcessed(state.iterations() * StoryBytes());
}
BENCHMARK(BM_HpackDecode_TolerantStories)->Unit(benchmark::kMillisecond);

void BM_HuffmanDecode(benchmark::State& state) {
  std::string text;
  for (int i = 0; text.size() < 4096; ++i) {
    text += "/api/v1/users/" + std::to_string(i * 7919) + "?session=abcdef0123456789&lang=en-US;";
  }
  const std::string encoded = HuffmanEncode(text);
  std::string out;
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(HuffmanDecode(encoded, out));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(encoded.size()));
}
BENCHMARK(BM_HuffmanDecode);

// Huffman alone on header-sized strings: every name and value of the public
// stories, encoded one by one (most are 3..40 bytes, so per-string setup and
// the tail count as much as the bulk loop).
void BM_HuffmanDecode_HeaderStrings(benchmark::State& state) {
  std::vector<std::string> encoded;
  const fs::path root = fs::path(SONDE_SOURCE_DIR) / ".." / "shared" / "testdata" / "hpack";
  if (fs::is_directory(root / "nghttp2")) {
    for (const auto& file : fs::directory_iterator(root / "nghttp2")) {
      if (file.path().extension() != ".json") continue;
      std::ifstream in(file.path());
      const auto json = nlohmann::json::parse(in);
      for (const auto& c : json.at("cases")) {
        for (const auto& kv : c.at("headers")) {
          for (auto it = kv.begin(); it != kv.end(); ++it) {
            encoded.push_back(HuffmanEncode(it.key()));
            encoded.push_back(HuffmanEncode(it.value().get<std::string>()));
          }
        }
      }
    }
  }
  if (encoded.empty()) {
    state.SkipWithError("HPACK stories not found");
    return;
  }
  int64_t bytes = 0;
  size_t longest = 0;
  for (const std::string& e : encoded) {
    bytes += static_cast<int64_t>(e.size());
    longest = std::max(longest, e.size());
  }
  std::string out(HuffmanDecodedBound(longest), '\0');
  const bool exact = state.range(0) != 0;
  state.SetLabel(exact ? "exact (HuffmanDecodeTo)" : "fast path (HuffmanDecodeFast, as HPACK uses)");
  const uint32_t* table = huffman_internal::ComplementPeekTable();
  for (auto _ : state) {
    for (const std::string& e : encoded) {
      size_t written = 0;
      benchmark::DoNotOptimize(exact ? HuffmanDecodeTo(e, out.data(), written)
                                     : HuffmanDecodeFast(e, out.data(), written, table));
    }
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["strings/s"] = benchmark::Counter(
      static_cast<double>(encoded.size()) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HuffmanDecode_HeaderStrings)->Arg(0)->Arg(1);

// --- frame parsing -------------------------------------------------------------

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f += {static_cast<char>(len >> 16), static_cast<char>(len >> 8), static_cast<char>(len),
        static_cast<char>(type), static_cast<char>(flags), static_cast<char>(stream >> 24),
        static_cast<char>(stream >> 16), static_cast<char>(stream >> 8), static_cast<char>(stream)};
  f.append(payload);
  return f;
}

struct Connection {
  std::string c2s, s2c;
};

// `streams` gRPC-style calls: request HEADERS + DATA, response HEADERS +
// DATA (`body` bytes) + trailers, headers encoded by nghttp2's deflater.
Connection BuildConnection(int streams, size_t body) {
  nghttp2_hd_deflater* client = nullptr;
  nghttp2_hd_deflater* server = nullptr;
  nghttp2_hd_deflate_new(&client, 4096);
  nghttp2_hd_deflate_new(&server, 4096);
  auto encode = [](nghttp2_hd_deflater* d, std::vector<std::pair<std::string, std::string>> h) {
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(d, nva.data(), nva.size()), '\0');
    const auto n = nghttp2_hd_deflate_hd(d, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                         nva.data(), nva.size());
    out.resize(static_cast<size_t>(n));
    return out;
  };
  Connection c;
  c.c2s = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(4, 0, 0, "");
  c.s2c = Frame(4, 0, 0, "") + Frame(4, 1, 0, "");
  const std::string msg(body, 'm');
  std::string grpc_body(1, '\0');
  grpc_body += {static_cast<char>(body >> 24), static_cast<char>(body >> 16),
                static_cast<char>(body >> 8), static_cast<char>(body)};
  grpc_body += msg;
  for (int i = 0; i < streams; ++i) {
    const auto id = static_cast<uint32_t>(1 + 2 * i);
    c.c2s += Frame(1, 0x4, id,
                   encode(client, {{":method", "POST"},
                                   {":scheme", "http"},
                                   {":path", "/bench.Service/Method" + std::to_string(i % 10)},
                                   {":authority", "bench:50051"},
                                   {"content-type", "application/grpc"},
                                   {"te", "trailers"},
                                   {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-" +
                                                       std::to_string(1000000000000000 + i) +
                                                       "-01"}}));
    c.c2s += Frame(0, 0x1, id, grpc_body.substr(0, 64));
    c.s2c += Frame(1, 0x4, id,
                   encode(server, {{":status", "200"}, {"content-type", "application/grpc"}}));
    for (size_t off = 0; off < grpc_body.size(); off += 16384) {
      c.s2c += Frame(0, 0, id, std::string_view(grpc_body).substr(off, 16384));
    }
    c.s2c += Frame(1, 0x5, id, encode(server, {{"grpc-status", "0"}, {"grpc-message", ""}}));
  }
  nghttp2_hd_deflate_del(client);
  nghttp2_hd_deflate_del(server);
  return c;
}

void FeedAll(Http2Session& session, Direction dir, std::string_view bytes, size_t piece) {
  std::string pending;
  for (size_t off = 0; off < bytes.size(); off += piece) {
    pending.append(bytes.substr(off, piece));
    StreamView view;
    view.bytes = pending;
    view.chunks.push_back(ChunkInfo{0, off, off + 1, static_cast<uint32_t>(off), 1});
    pending.erase(0, session.OnBytes(dir, view));
  }
}

void BM_FrameParse(benchmark::State& state) {
  const Connection c = BuildConnection(1000, static_cast<size_t>(state.range(0)));
  std::vector<L7Record> records;
  for (auto _ : state) {
    Http2Session session(Role::kClient, false);
    FeedAll(session, Direction::kEgress, c.c2s, 64 * 1024);
    FeedAll(session, Direction::kIngress, c.s2c, 64 * 1024);
    records.clear();
    session.TakeRecords(0, true, records);
    if (records.size() != 1000) state.SkipWithError("lost records");
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(c.c2s.size() + c.s2c.size()));
  state.counters["streams/s"] =
      benchmark::Counter(1000.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FrameParse)->Arg(64)->Arg(4096)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sonde::protocols::http2

BENCHMARK_MAIN();
