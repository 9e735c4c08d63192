#include "agent/conn/data_stream.h"

#include <algorithm>

namespace sonde::conn {

using protocols::ChunkInfo;
using protocols::StreamView;

DataStream::~DataStream() { shared_->used -= std::min(shared_->used, buffered_bytes()); }

void DataStream::Add(const DataChunk& chunk, StreamConsumer& consumer) {
  ++shared_->counters.chunks;
  shared_->counters.bytes += chunk.bytes;
  shared_->counters.captured_bytes += std::min<uint64_t>(chunk.payload.size(), chunk.bytes);
  Place(chunk, consumer);
}

void DataStream::Place(DataChunk chunk, StreamConsumer& consumer) {
  if (chunk.payload.size() > chunk.bytes) chunk.payload = chunk.payload.substr(0, chunk.bytes);
  while (chunk.tcp_seq && next_seq_) {
    auto ahead = static_cast<int32_t>(*chunk.tcp_seq - *next_seq_);
    if (ahead == 0) break;
    if (ahead < 0) {
      // Overlaps bytes already delivered (a retried read, a duplicate event).
      uint64_t overlap = static_cast<uint64_t>(-static_cast<int64_t>(ahead));
      if (overlap >= chunk.bytes) {
        shared_->counters.duplicate_bytes += chunk.bytes;
        return;
      }
      shared_->counters.duplicate_bytes += overlap;
      chunk.payload.remove_prefix(std::min<uint64_t>(overlap, chunk.payload.size()));
      chunk.bytes -= overlap;
      chunk.tcp_seq = *chunk.tcp_seq + static_cast<uint32_t>(overlap);
      continue;
    }
    const size_t waiting = has_waiting() ? pending_->reorder->waiting.size() : 0;
    bool full = waiting >= shared_->options.max_reorder_chunks ||
                shared_->used + chunk.payload.size() > shared_->limit;
    if (full && waiting != 0) {
      ReleaseOldest(consumer);  // no room to wait longer: the oldest hole becomes a gap
      continue;
    }
    uint64_t offset = next_offset_ + static_cast<uint64_t>(ahead);
    if (full) {
      Gap(static_cast<uint64_t>(ahead), consumer);
      next_offset_ = offset;
      next_seq_ = chunk.tcp_seq;
      break;
    }
    ++shared_->counters.reordered;
    std::unique_ptr<Reorder>& reorder = pending().reorder;
    if (!reorder) reorder = std::make_unique<Reorder>();
    if (reorder->waiting.empty()) reorder->oldest_ns = chunk.ts_exit_ns;
    Waiting& w = reorder->waiting[offset];
    shared_->used -= std::min<size_t>(shared_->used, w.payload.size());
    reorder->bytes -= w.payload.size();
    w.chunk = chunk;
    w.payload.assign(chunk.payload);
    reorder->bytes += w.payload.size();
    shared_->used += w.payload.size();
    return;
  }
  Deliver(chunk, consumer);
  DrainWaiting(consumer);
}

void DataStream::ReleaseOldest(StreamConsumer& consumer) {
  auto it = pending_->reorder->waiting.begin();
  if (it->first > next_offset_) {
    Gap(it->first - next_offset_, consumer);
    next_offset_ = it->first;
    next_seq_ = it->second.chunk.tcp_seq;
  }
  DrainWaiting(consumer);
}

void DataStream::DrainWaiting(StreamConsumer& consumer) {
  if (!pending_ || !pending_->reorder) return;
  // `pending_` stays allocated while the reorder map holds chunks (nothing
  // below releases it), so the reference is stable across Place().
  Reorder& reorder = *pending_->reorder;
  while (!reorder.waiting.empty() && reorder.waiting.begin()->first <= next_offset_) {
    auto it = reorder.waiting.begin();
    Waiting w = std::move(it->second);
    reorder.bytes -= w.payload.size();
    shared_->used -= std::min(shared_->used, w.payload.size());
    reorder.waiting.erase(it);
    w.chunk.payload = w.payload;
    Place(w.chunk, consumer);
  }
  if (reorder.waiting.empty()) reorder.oldest_ns = 0;
}

void DataStream::Deliver(const DataChunk& chunk, StreamConsumer& consumer) {
  if (chunk.tcp_seq) {
    next_seq_ = *chunk.tcp_seq + static_cast<uint32_t>(chunk.bytes);
  } else if (next_seq_) {
    next_seq_ = *next_seq_ + static_cast<uint32_t>(chunk.bytes);
  }
  next_offset_ += chunk.bytes;

  if (!chunk.payload.empty()) {
    // Only bytes appended to the buffer count against the budget: an empty
    // buffer's call is parsed in place (and its unconsumed rest is checked
    // in KeepRemainder), so a budget of 0 turns buffering off, not parsing.
    if (!buf_empty() && shared_->used + chunk.payload.size() > shared_->limit) {
      ++shared_->drops;
      Gap(chunk.bytes, consumer);
      return;
    }
    ChunkInfo info;
    info.ts_enter_ns = chunk.ts_enter_ns;
    info.ts_exit_ns = chunk.ts_exit_ns;
    info.tcp_seq = chunk.tcp_seq;
    info.thread_id = chunk.thread_id;
    info.peer = chunk.peer;
    if (buf_empty()) {
      // Fast path: the protocol reads the event's payload in place (the view
      // is a member so no allocation happens per event).
      StreamView& view = shared_->fast_view;
      info.offset = 0;
      view.bytes = chunk.payload;
      view.chunks.assign(1, info);
      view.connection_closed = false;
      size_t used = consumer.OnBytes(dir_, view);
      KeepRemainder(view.bytes, view.chunks, used, consumer);
    } else {
      Pending& p = *pending_;
      StreamView view;
      size_t old = p.buf.size();
      info.offset = p.buf.size();
      p.buf.append(chunk.payload);
      p.chunks.push_back(info);
      shared_->used += p.buf.size() - old;
      view.bytes = p.buf;
      view.chunks = p.chunks;
      size_t used = consumer.OnBytes(dir_, view);
      KeepRemainder(view.bytes, view.chunks, used, consumer);
    }
  }
  if (chunk.payload.size() < chunk.bytes) Gap(chunk.bytes - chunk.payload.size(), consumer);
}

void DataStream::KeepRemainder(std::string_view bytes, const std::vector<ChunkInfo>& chunks,
                               size_t used, StreamConsumer& consumer) {
  const size_t old = buf_size();
  used = std::min(used, bytes.size());
  const size_t rest = bytes.size() - used;
  if (rest == 0) {
    ClearBuf();
  } else if (rest > shared_->options.max_buffer_bytes || shared_->used - old + rest > shared_->limit) {
    // The protocol keeps waiting for an end that does not come: drop, count.
    if (rest > shared_->options.max_buffer_bytes) ++shared_->counters.overflow_drops; else ++shared_->drops;
    ClearBuf();
    shared_->used -= std::min(shared_->used, old);
    shared_->counters.gap_bytes += rest;
    consumer.OnGap(dir_, rest);
    return;
  } else {
    std::vector<ChunkInfo>& rebuilt = shared_->scratch_chunks;
    rebuilt.clear();
    for (size_t i = 0; i < chunks.size(); ++i) {
      uint64_t end = i + 1 < chunks.size() ? chunks[i + 1].offset : bytes.size();
      if (end <= used) continue;
      ChunkInfo c = chunks[i];
      uint64_t start = std::max<uint64_t>(c.offset, used);
      if (c.tcp_seq) c.tcp_seq = *c.tcp_seq + static_cast<uint32_t>(start - c.offset);
      c.offset = start - used;
      rebuilt.push_back(c);
    }
    Pending& p = pending();
    p.chunks.assign(rebuilt.begin(), rebuilt.end());
    if (bytes.data() == p.buf.data()) {
      p.buf.erase(0, used);
    } else {
      p.buf.assign(bytes.substr(used));
    }
  }
  shared_->used = shared_->used - std::min(shared_->used, old) + buf_size();
}

void DataStream::Gap(uint64_t bytes, StreamConsumer& consumer) {
  if (bytes == 0 && buf_empty()) return;
  // Bytes the protocol had not consumed are lost with the gap.
  uint64_t total = bytes == protocols::kUnknownGapBytes ? bytes : bytes + buf_size();
  shared_->counters.gap_bytes += bytes == protocols::kUnknownGapBytes ? 0 : bytes;
  shared_->used -= std::min(shared_->used, buf_size());
  ClearBuf();
  consumer.OnGap(dir_, total);
}

void DataStream::ForceWaiting(StreamConsumer& consumer) {
  while (has_waiting()) ReleaseOldest(consumer);
}

void DataStream::FlushExpired(uint64_t now_ns, StreamConsumer& consumer) {
  if (!has_waiting() || now_ns < pending_->reorder->oldest_ns + shared_->options.reorder_window_ns) return;
  ForceWaiting(consumer);
}

void DataStream::Close(StreamConsumer& consumer) {
  ForceWaiting(consumer);
  StreamView view;
  if (pending_) {
    view.bytes = pending_->buf;
    view.chunks = pending_->chunks;
  }
  view.connection_closed = true;
  consumer.OnBytes(dir_, view);
  shared_->used -= std::min(shared_->used, buf_size());
  ClearBuf();
}

void DataStream::ReleaseIdleMemory() {
  if (!buf_empty() || has_waiting()) return;
  pending_.reset();
}

}  // namespace sonde::conn
