#pragma once
// One direction of one connection: captured calls in TCP-sequence order,
// holes reported as gaps, bytes the protocol did not consume yet kept for the
// next call. Chunks that arrive ahead of a hole wait (bounded in count and
// time) for the hole to fill, then the hole becomes a gap.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/protocol.h"

namespace sonde::conn {

// One captured call's contribution to a stream.
struct DataChunk {
  uint64_t ts_enter_ns = 0;
  uint64_t ts_exit_ns = 0;
  std::optional<uint32_t> tcp_seq;  // sequence of the first byte, when known
  uint32_t thread_id = 0;
  uint64_t bytes = 0;         // bytes the call moved
  std::string_view payload;   // captured prefix (payload.size() <= bytes)
  protocols::PeerAddress peer;  // UDP: the datagram's remote end
};

// Receives the stream's contents in order.
class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;
  virtual size_t OnBytes(protocols::Direction dir, const protocols::StreamView& view) = 0;
  virtual void OnGap(protocols::Direction dir, uint64_t bytes) = 0;
};

struct StreamCounters {
  uint64_t chunks = 0;
  uint64_t bytes = 0;            // bytes moved by the calls
  uint64_t captured_bytes = 0;   // payload bytes captured
  uint64_t gap_bytes = 0;        // bytes reported as gaps (truncation + holes + drops)
  uint64_t reordered = 0;        // chunks that waited for an earlier one
  uint64_t duplicate_bytes = 0;  // bytes seen twice (overlapping sequence ranges)
  uint64_t overflow_drops = 0;   // buffers dropped at the per-stream bound
};

struct StreamOptions {
  size_t max_buffer_bytes = 256u << 10;  // unconsumed bytes kept per stream
  size_t max_reorder_chunks = 32;        // chunks waiting for a hole to fill
  uint64_t reorder_window_ns = 100'000'000;
};

// Shared by all streams of a tracker: options, the byte budget, the
// counters (summed, never read per stream) and scratch space a stream needs
// only during one call -- kept once here, not in each of tens of thousands
// of streams.
struct StreamShared {
  StreamOptions options;
  size_t limit = 64u << 20;  // bytes buffered over all streams
  size_t used = 0;
  uint64_t drops = 0;  // chunks / buffers dropped because the budget was full
  StreamCounters counters;
  protocols::StreamView fast_view;                     // the in-place view of one call's bytes
  std::vector<protocols::ChunkInfo> scratch_chunks;    // KeepRemainder's rebuilt chunk list
};

class DataStream {
 public:
  using Options = StreamOptions;

  // `shared` outlives the stream (the tracker's).
  DataStream(protocols::Direction dir, StreamShared* shared) : shared_(shared), dir_(dir) {}
  ~DataStream();
  DataStream(const DataStream&) = delete;
  DataStream& operator=(const DataStream&) = delete;

  // Adds one call's bytes and delivers whatever is now in order.
  void Add(const DataChunk& chunk, StreamConsumer& consumer);
  // Holes older than the reorder window become gaps.
  void FlushExpired(uint64_t now_ns, StreamConsumer& consumer);
  // No more bytes will come: deliver everything, holes as gaps, and present
  // the remainder once more with connection_closed set.
  void Close(StreamConsumer& consumer);

  // Nothing buffered: give back the capacity kept for reuse (an idle
  // connection's streams then hold no heap memory).
  void ReleaseIdleMemory();

  size_t buffered_bytes() const {
    return pending_ ? pending_->buf.size() + (pending_->reorder ? pending_->reorder->bytes : 0) : 0;
  }
  // Chunks wait for an earlier hole to fill.
  bool has_waiting() const { return pending_ && pending_->reorder && !pending_->reorder->waiting.empty(); }

 private:
  struct Waiting {
    DataChunk chunk;
    std::string payload;  // owned copy
  };
  void Place(DataChunk chunk, StreamConsumer& consumer);
  void Deliver(const DataChunk& chunk, StreamConsumer& consumer);
  void Gap(uint64_t bytes, StreamConsumer& consumer);
  void DrainWaiting(StreamConsumer& consumer);
  void ReleaseOldest(StreamConsumer& consumer);
  void ForceWaiting(StreamConsumer& consumer);
  void KeepRemainder(std::string_view bytes, const std::vector<protocols::ChunkInfo>& chunks,
                     size_t used, StreamConsumer& consumer);

  // Chunks ahead of a hole, keyed by stream offset. Allocated on the first
  // out-of-order chunk: most streams never need it.
  struct Reorder {
    std::map<uint64_t, Waiting> waiting;
    uint64_t bytes = 0;
    uint64_t oldest_ns = 0;
  };
  // Bytes kept across calls. Allocated when a call leaves bytes the protocol
  // did not consume (or arrives out of order), released once the stream has
  // been quiet and empty: a stream whose calls each carry whole messages --
  // the usual case -- never allocates one.
  struct Pending {
    std::string buf;  // unconsumed bytes, buf[0] is the next byte the protocol sees
    std::vector<protocols::ChunkInfo> chunks;  // calls covering buf
    std::unique_ptr<Reorder> reorder;
  };
  Pending& pending() {
    if (!pending_) pending_ = std::make_unique<Pending>();
    return *pending_;
  }
  bool buf_empty() const { return !pending_ || pending_->buf.empty(); }
  size_t buf_size() const { return pending_ ? pending_->buf.size() : 0; }
  void ClearBuf() {
    if (pending_) {
      pending_->buf.clear();
      pending_->chunks.clear();
    }
  }

  // 40 bytes a stream: tens of thousands of idle connections hold two each.
  StreamShared* shared_;
  std::unique_ptr<Pending> pending_;
  std::optional<uint32_t> next_seq_;  // sequence of the next expected byte
  uint64_t next_offset_ = 0;          // stream offset of the next expected byte
  protocols::Direction dir_;
};

}  // namespace sonde::conn
