#pragma once
// HTTP/1.x ProtocolSession: one incremental parser per direction (heads,
// Content-Length / chunked / close-delimited bodies, gaps inside bodies
// absorbed by byte count) and a stitcher pairing requests with responses in
// order (keep-alive and pipelining). Pairs that would violate causality (a
// response that started before its request) are never made: after lost
// bytes the orphan response is dropped and counted instead.
#include <string>
#include <vector>

#include "agent/protocols/http1/parser.h"
#include "agent/protocols/protocol.h"

namespace sonde::protocols::http1 {

// Part of a message head, as an offset into the message's copy of its head
// (wire.headers.bytes()): the request line and Host are in that copy, so a
// message carries no strings of its own until its record is built.
struct HeadSpan {
  uint32_t offset = 0;
  uint32_t size = 0;
  std::string_view In(std::string_view head) const { return head.substr(offset, size); }
};

// One parsed request or response, before pairing.
struct Http1Message {
  L7Message wire;
  HeadSpan method;     // requests
  HeadSpan path;       // requests: request-target without the query (empty reads "/")
  HeadSpan query;      // requests: query string without '?'
  HeadSpan authority;  // requests: Host (or the absolute-form target's)
  int status = 0;      // responses
  int version_minor = 1;
  uint64_t interim_bytes = 0;  // responses: bytes of 1xx heads before the final one
  bool truncated = false;      // a capture gap broke this message
  bool late_join = false;      // first message after joining a connection mid-way

  std::string_view head() const { return wire.headers.bytes(); }

  // Ready for the next message. Cheaper than assigning a fresh Http1Message,
  // which zero-fills it with `rep stos`.
  void Reset() {
    wire.first_byte_ns = wire.last_byte_ns = wire.bytes = wire.body_bytes = 0;
    wire.first_tcp_seq.reset();
    wire.headers.Clear();
    wire.thread_id = 0;
    wire.complete = false;
    method = path = query = authority = HeadSpan{};
    status = 0;
    version_minor = 1;
    interim_bytes = 0;
    truncated = late_join = false;
  }
};
// Reset() names every field: a new field in L7Message must be added there.
static_assert(sizeof(L7Message) == 80, "update Http1Message::Reset() for the new L7Message field");

// FIFO of messages waiting to be paired. A vector with a moving head, not a
// std::deque: a message is larger than deque's 512-byte node, so a deque
// allocated on every push.
class MessageQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  Http1Message& front() { return items_[head_]; }
  const Http1Message& operator[](size_t i) const { return items_[head_ + i]; }
  void push_back(Http1Message&& m) { items_.push_back(std::move(m)); }
  void pop_front();
  void clear() {
    items_.clear();
    head_ = 0;
  }
  // Gives the storage back when nothing is queued.
  void ReleaseIfEmpty() {
    if (empty()) {
      std::vector<Http1Message>().swap(items_);
      head_ = 0;
    }
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }

 private:
  std::vector<Http1Message> items_;
  size_t head_ = 0;
};

class Http1Session final : public ProtocolSession {
 public:
  // Bounds on queued unpaired messages per direction.
  static constexpr size_t kMaxPending = 256;

  Http1Session(Role role, bool late_join);

  size_t OnBytes(Direction dir, const StreamView& view) override;
  void OnGap(Direction dir, uint64_t bytes) override;
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) override;
  const ProtocolCounters& counters() const override { return counters_; }
  void ReleaseIdleMemory() override;
  bool Quiescent(Role* role) const override;
  bool Renew(Role role, bool late_join) override;
  void Reassign(Role role, bool late_join) override;

  Role role() const { return role_; }

 private:
  enum class Phase : uint8_t { kHead, kBody, kChunked, kUntilClose, kTunnel, kResync };

  struct DirState {
    Phase phase = Phase::kHead;
    uint64_t body_remaining = 0;
    ChunkedDecoder chunked;
    Http1Message current;          // message whose body is being read
    uint64_t interim_bytes = 0;    // 1xx bytes waiting for the final response
    uint64_t last_exit_ns = 0;     // exit time of the newest call seen
    bool after_desync = false;     // next message follows a resync
  };

  bool IsRequestDir(Direction dir) const;
  void ResolveRole(Direction dir, std::string_view bytes);
  DirState& State(Direction dir) { return dir == Direction::kEgress ? egress_ : ingress_; }
  // Parses one head at `pos`; returns bytes consumed or 0 when more data is needed.
  size_t ParseHead(Direction dir, const StreamView& view, size_t pos, bool* need_more);
  void StartMessage(Direction dir, const StreamView& view, size_t pos, const MessageHead& head,
                    Http1Message* msg);
  void Finish(Direction dir, DirState& st, uint64_t last_byte_ns);
  void Desync(Direction dir, DirState& st);
  std::string_view NextResponseMethod() const;
  // Pairs a finished response that no queued response precedes.
  void PairNow(Http1Message& resp);
  void Pair();
  void Emit(Http1Message&& req, Http1Message* resp);

  Role role_;
  bool late_join_;
  DirState egress_;
  DirState ingress_;
  MessageQueue requests_;
  MessageQueue responses_;
  std::vector<L7Record> ready_;
  ProtocolCounters counters_;

};

}  // namespace sonde::protocols::http1
