#include "agent/conn/data_stream.h"

#include <algorithm>

namespace sonde::conn {

using protocols::ChunkInfo;
using protocols::StreamView;

DataStream::~DataStream() { budget_->used -= std::min(budget_->used, buffered_bytes()); }

void DataStream::Add(const DataChunk& chunk, StreamConsumer& consumer) {
  ++counters_.chunks;
  counters_.bytes += chunk.bytes;
  counters_.captured_bytes += std::min<uint64_t>(chunk.payload.size(), chunk.bytes);
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
        counters_.duplicate_bytes += chunk.bytes;
        return;
      }
      counters_.duplicate_bytes += overlap;
      chunk.payload.remove_prefix(std::min<uint64_t>(overlap, chunk.payload.size()));
      chunk.bytes -= overlap;
      chunk.tcp_seq = *chunk.tcp_seq + static_cast<uint32_t>(overlap);
      continue;
    }
    const size_t waiting = reorder_ ? reorder_->waiting.size() : 0;
    bool full = waiting >= options_.max_reorder_chunks ||
                budget_->used + chunk.payload.size() > budget_->limit;
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
    ++counters_.reordered;
    if (!reorder_) reorder_ = std::make_unique<Reorder>();
    if (reorder_->waiting.empty()) reorder_->oldest_ns = chunk.ts_exit_ns;
    Waiting& w = reorder_->waiting[offset];
    budget_->used -= std::min<size_t>(budget_->used, w.payload.size());
    reorder_->bytes -= w.payload.size();
    w.chunk = chunk;
    w.payload.assign(chunk.payload);
    reorder_->bytes += w.payload.size();
    budget_->used += w.payload.size();
    return;
  }
  Deliver(chunk, consumer);
  DrainWaiting(consumer);
}

void DataStream::ReleaseOldest(StreamConsumer& consumer) {
  auto it = reorder_->waiting.begin();
  if (it->first > next_offset_) {
    Gap(it->first - next_offset_, consumer);
    next_offset_ = it->first;
    next_seq_ = it->second.chunk.tcp_seq;
  }
  DrainWaiting(consumer);
}

void DataStream::DrainWaiting(StreamConsumer& consumer) {
  if (!reorder_) return;
  while (!reorder_->waiting.empty() && reorder_->waiting.begin()->first <= next_offset_) {
    auto it = reorder_->waiting.begin();
    Waiting w = std::move(it->second);
    reorder_->bytes -= w.payload.size();
    budget_->used -= std::min(budget_->used, w.payload.size());
    reorder_->waiting.erase(it);
    w.chunk.payload = w.payload;
    Place(w.chunk, consumer);
  }
  if (reorder_->waiting.empty()) reorder_->oldest_ns = 0;
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
    if (!buf_.empty() && budget_->used + chunk.payload.size() > budget_->limit) {
      ++budget_->drops;
      Gap(chunk.bytes, consumer);
      return;
    }
    ChunkInfo info;
    info.ts_enter_ns = chunk.ts_enter_ns;
    info.ts_exit_ns = chunk.ts_exit_ns;
    info.tcp_seq = chunk.tcp_seq;
    info.thread_id = chunk.thread_id;
    info.peer = chunk.peer;
    if (buf_.empty()) {
      // Fast path: the protocol reads the event's payload in place (the view
      // is a member so no allocation happens per event).
      StreamView& view = budget_->fast_view;
      info.offset = 0;
      view.bytes = chunk.payload;
      view.chunks.assign(1, info);
      view.connection_closed = false;
      size_t used = consumer.OnBytes(dir_, view);
      KeepRemainder(view.bytes, view.chunks, used, consumer);
    } else {
      StreamView view;
      size_t old = buf_.size();
      info.offset = buf_.size();
      buf_.append(chunk.payload);
      chunks_.push_back(info);
      budget_->used += buf_.size() - old;
      view.bytes = buf_;
      view.chunks = chunks_;
      size_t used = consumer.OnBytes(dir_, view);
      KeepRemainder(view.bytes, view.chunks, used, consumer);
    }
  }
  if (chunk.payload.size() < chunk.bytes) Gap(chunk.bytes - chunk.payload.size(), consumer);
}

void DataStream::KeepRemainder(std::string_view bytes, const std::vector<ChunkInfo>& chunks,
                               size_t used, StreamConsumer& consumer) {
  const size_t old = buf_.size();
  used = std::min(used, bytes.size());
  const size_t rest = bytes.size() - used;
  if (rest == 0) {
    buf_.clear();
    chunks_.clear();
  } else if (rest > options_.max_buffer_bytes || budget_->used - old + rest > budget_->limit) {
    // The protocol keeps waiting for an end that does not come: drop, count.
    if (rest > options_.max_buffer_bytes) ++counters_.overflow_drops; else ++budget_->drops;
    buf_.clear();
    chunks_.clear();
    budget_->used -= std::min(budget_->used, old);
    counters_.gap_bytes += rest;
    consumer.OnGap(dir_, rest);
    return;
  } else {
    std::vector<ChunkInfo>& rebuilt = budget_->scratch_chunks;
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
    chunks_.assign(rebuilt.begin(), rebuilt.end());
    if (bytes.data() == buf_.data()) {
      buf_.erase(0, used);
    } else {
      buf_.assign(bytes.substr(used));
    }
  }
  budget_->used = budget_->used - std::min(budget_->used, old) + buf_.size();
}

void DataStream::Gap(uint64_t bytes, StreamConsumer& consumer) {
  if (bytes == 0 && buf_.empty()) return;
  // Bytes the protocol had not consumed are lost with the gap.
  uint64_t total = bytes == protocols::kUnknownGapBytes ? bytes : bytes + buf_.size();
  counters_.gap_bytes += bytes == protocols::kUnknownGapBytes ? 0 : bytes;
  budget_->used -= std::min(budget_->used, buf_.size());
  buf_.clear();
  chunks_.clear();
  consumer.OnGap(dir_, total);
}

void DataStream::ForceWaiting(StreamConsumer& consumer) {
  while (has_waiting()) ReleaseOldest(consumer);
}

void DataStream::FlushExpired(uint64_t now_ns, StreamConsumer& consumer) {
  if (!has_waiting() || now_ns < reorder_->oldest_ns + options_.reorder_window_ns) return;
  ForceWaiting(consumer);
}

void DataStream::Close(StreamConsumer& consumer) {
  ForceWaiting(consumer);
  StreamView view;
  view.bytes = buf_;
  view.chunks = chunks_;
  view.connection_closed = true;
  consumer.OnBytes(dir_, view);
  budget_->used -= std::min(budget_->used, buf_.size());
  buf_.clear();
  chunks_.clear();
}

void DataStream::ReleaseIdleMemory() {
  if (!buf_.empty() || has_waiting()) return;
  std::string().swap(buf_);
  std::vector<protocols::ChunkInfo>().swap(chunks_);
  reorder_.reset();
}

}  // namespace sonde::conn
