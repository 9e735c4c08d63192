#pragma once
// One HTTP/2 connection as seen from one socket: both directions' frame
// parsers and HPACK decoders, the stream table, and one L7Record per stream
// (protocol kGrpc when the stream is a gRPC call).
//
// Lossy capture: a gap inside a DATA payload is absorbed; any other gap or
// an implausible frame header sends the direction into resync (scan for the
// next chain of plausible frame headers) and declares its HPACK table lost,
// after which header blocks are decoded tolerantly (see tolerant_hpack.h).
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/grpc.h"
#include "agent/protocols/http2/hpack.h"
#include "agent/protocols/protocol.h"

namespace sonde::protocols::http2 {

struct Http2Counters {
  std::array<uint64_t, kNumKnownFrameTypes> frames{};  // by FrameType
  uint64_t unknown_type_frames = 0;   // extension frames skipped while in sync
  uint64_t header_blocks = 0;
  uint64_t continuation_errors = 0;   // a header block interrupted by another frame
  uint64_t malformed_frames = 0;      // bad padding / sizes inside a plausible header
  uint64_t resync_bytes_skipped = 0;  // bytes discarded while looking for a boundary
  uint64_t closed_stream_frames = 0;  // frames for streams already reported
  uint64_t streams_evicted = 0;       // open streams dropped to bound memory
  uint64_t streams_start_unseen = 0;  // streams first seen after their request HEADERS
  uint64_t streams_reset = 0;
  uint64_t goaways = 0;
  uint64_t prefaces = 0;
};

class Http2Session final : public ProtocolSession {
 public:
  // Bounds that keep one connection's memory finite.
  static constexpr size_t kMaxOpenStreams = 1024;
  static constexpr size_t kMaxHeaderBlockBytes = 256 * 1024;
  static constexpr size_t kMaxHeadersPerMessage = 256;
  static constexpr uint64_t kStreamIdleTimeoutNs = 300ull * 1000 * 1000 * 1000;

  Http2Session(Role role, bool late_join);

  size_t OnBytes(Direction dir, const StreamView& view) override;
  void OnGap(Direction dir, uint64_t bytes) override;
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) override;
  const ProtocolCounters& counters() const override { return counters_; }
  void ReleaseIdleMemory() override;
  std::string Freeze() const override;
  // A session from Freeze()'s bytes; null when they are not valid.
  static std::unique_ptr<Http2Session> Thaw(std::string_view frozen);

  const Http2Counters& http2_counters() const { return h2_; }
  // Sum of both directions' HPACK counters.
  HpackCounters hpack_counters() const;

 private:
  enum class Phase : uint8_t { kPreface, kFrames, kDataPayload, kResync };

  // Where a frame sits in the captured bytes (timing, sequence, thread).
  struct FrameContext {
    uint64_t first_ns = 0;
    uint64_t last_ns = 0;
    std::optional<uint32_t> seq;
    uint32_t thread_id = 0;
  };

  struct DirState {
    Phase phase = Phase::kPreface;
    HpackDecoder hpack;
    uint32_t max_frame_size = kDefaultMaxFrameSize;  // raised by the peer's SETTINGS
    // DATA payload being streamed.
    uint32_t data_stream = 0;
    bool data_end_stream = false;
    bool data_need_pad_len = false;
    uint64_t data_left = 0;  // payload bytes still to come, padding included
    uint64_t body_left = 0;  // of which data (not padding)
    // Header block being assembled from HEADERS/PUSH_PROMISE + CONTINUATION.
    bool block_active = false;
    uint32_t block_stream = 0;
    uint32_t block_promised = 0;  // non-zero: PUSH_PROMISE
    bool block_end_stream = false;
    uint64_t block_wire_bytes = 0;
    FrameContext block_ctx;
    std::string block;
  };

  struct Stream {
    L7Record rec;
    std::optional<Direction> request_dir;
    bool request_headers = false;
    bool response_headers = false;  // final (non-1xx) response headers
    bool request_end = false;
    bool response_end = false;
    bool start_unseen = false;  // first frame seen was not the request HEADERS
    bool degraded = false;      // a header block was decoded without full HPACK state
    uint64_t last_ns = 0;
    GrpcMessageCounter request_grpc;
    GrpcMessageCounter response_grpc;
  };

  static size_t Index(Direction d) { return d == Direction::kEgress ? 0 : 1; }
  static Direction Other(Direction d) {
    return d == Direction::kEgress ? Direction::kIngress : Direction::kEgress;
  }

  void EnterResync(DirState& ds, bool lose_hpack);
  void HandleFrame(Direction dir, DirState& ds, const FrameHeader& h, std::string_view payload,
                   const FrameContext& ctx);
  void StartHeaderBlock(DirState& ds, const FrameHeader& h, std::string_view fragment,
                        uint32_t promised, const FrameContext& ctx);
  void FinishHeaderBlock(Direction dir, DirState& ds, const FrameContext& last_ctx);
  void ApplyHeaders(Direction dir, Stream& s, bool is_request, bool end_stream,
                    const DecodedFieldList& fields, const FrameContext& ctx, uint64_t wire_bytes);
  void OnDataBytes(Direction dir, DirState& ds, std::string_view body, uint64_t wire_bytes,
                   const FrameContext& ctx);
  void FinishDataFrame(Direction dir, DirState& ds);

  Stream* FindOrCreateStream(uint32_t id, uint64_t ts_ns);
  bool IsRequestDir(Direction dir, Stream& s);
  void EndMessage(Direction dir, Stream& s, uint32_t stream_id);
  void CompleteStream(uint32_t id);
  void Emit(Stream& s);
  void LearnClientDir(Direction client_dir);

  Role role_;
  bool late_join_;
  std::optional<Direction> client_dir_;
  std::array<DirState, 2> dirs_;
  std::map<uint32_t, Stream> streams_;
  // Ids of the last kRecentlyClosedStreams streams reported, a ring once
  // full (a vector: a std::deque costs ~600 bytes even for one id).
  std::vector<uint32_t> recently_closed_;
  size_t recently_closed_next_ = 0;
  std::vector<L7Record> done_;
  ProtocolCounters counters_;
  Http2Counters h2_;
};

}  // namespace sonde::protocols::http2
