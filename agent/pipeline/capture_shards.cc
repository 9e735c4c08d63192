#include "agent/pipeline/capture_shards.h"

#include <algorithm>
#include <cstring>

#include "agent/conn/connection.h"
#include "agent/core/clock.h"

namespace sonde::pipeline {
namespace {

// Events are stored back to back in a batch: a 8-byte length, then the
// record, padded to 8 bytes so every record stays aligned for its structs.
constexpr size_t kPrefix = 8;
size_t Padded(size_t n) { return (n + 7) & ~size_t{7}; }

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: inodes are sequential
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The socket an event belongs to, as the tracker keys it (tracker.cc KeyOf).
bool ShardKey(capture::RawEvent ev, uint64_t* key, uint64_t* ts) {
  const sonde_event_header* hdr = capture::AsHeader(ev);
  if (hdr == nullptr) return false;
  *ts = hdr->ts_exit_ns;
  uint64_t sock_id = 0;
  int32_t fd = -1;
  if (const auto* d = capture::AsDataEvent(ev)) {
    sock_id = d->sock_id;
    fd = d->fd;
  } else if (const auto* c = capture::AsConnEvent(ev)) {
    sock_id = c->sock_id;
    fd = c->fd;
  }
  *key = sock_id != 0 ? sock_id : ((static_cast<uint64_t>(hdr->pid) << 32) | static_cast<uint32_t>(fd));
  return true;
}

}  // namespace

void AddTrackerCounters(conn::TrackerCounters& to, const conn::TrackerCounters& from) {
  to.events += from.events;
  to.data_events += from.data_events;
  to.conn_events += from.conn_events;
  to.malformed_events += from.malformed_events;
  to.connections_opened += from.connections_opened;
  to.connections_closed += from.connections_closed;
  to.connections_expired += from.connections_expired;
  to.connections_replaced += from.connections_replaced;
  to.connections_rejected += from.connections_rejected;
  for (size_t r = 0; r < conn::kReleaseReasonCount; ++r) to.released[r] += from.released[r];
  to.unknown_protocol += from.unknown_protocol;
  to.given_up_late_events += from.given_up_late_events;
  to.memory_drops += from.memory_drops;
  to.overflow_drops += from.overflow_drops;
  to.memory_ceiling_sheds += from.memory_ceiling_sheds;
  to.socket_probes += from.socket_probes;
  to.gap_bytes += from.gap_bytes;
  to.reordered_chunks += from.reordered_chunks;
  to.duplicate_bytes += from.duplicate_bytes;
  to.records += from.records;
  conn::AddProtocolCounters(to.protocol, from.protocol);
}

struct CaptureShards::Worker {
  Worker(const conn::TrackerOptions& tracker_options, const core::MonotonicToRealtime& clock, uint64_t seed)
      : tracker(tracker_options), builder(clock, seed) {}

  // Capture thread only.
  std::vector<uint8_t> pending;
  uint64_t dispatched_ns = 0;  // latest event time handed to this worker

  // Shared with the worker, under `mu`.
  std::mutex mu;
  std::condition_variable wake;     // the worker: work, finish or stop
  std::condition_variable drained;  // the capture thread: the inbox was taken
  std::vector<uint8_t> inbox;
  bool finish = false;
  bool stop = false;
  bool done = false;

  // Worker thread only.
  conn::ConnectionTracker tracker;
  trace::SpanBuilder builder;
  std::unique_ptr<trace::ServiceNamer> namer;
  std::vector<conn::ConnRecord> records;
  trace::SpanGroup built;
  uint64_t last_tick_ns = 0;
  uint64_t last_counters_ns = 0;

  // Published by the worker, under `out_mu`.
  mutable std::mutex out_mu;
  trace::SpanGroup out;
  std::vector<uint64_t> unclaimed;
  conn::TrackerCounters counters;
  size_t open_connections = 0;
  size_t buffered_bytes = 0;
  std::atomic<uint64_t> processed_ns{0};  // latest event time processed
  std::atomic<bool> caught_up{true};      // everything handed over so far is processed

  std::thread thread;
};

CaptureShards::CaptureShards(CaptureShardOptions options, const core::MonotonicToRealtime& clock,
                             const NamerFactory& namers)
    : options_(options) {
  const size_t n = std::max<size_t>(options_.workers, 1);
  conn::TrackerOptions per_worker = options_.tracker;
  per_worker.max_connections = std::max<size_t>(per_worker.max_connections / n, 1024);
  per_worker.max_memory_bytes = std::max<size_t>(per_worker.max_memory_bytes / n, 1u << 20);
  for (size_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(per_worker, clock, /*seed=*/0);
    if (namers) {
      w->namer = namers();
      w->builder.set_service_namer(w->namer.get());
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { Work(*raw); });
  }
}

CaptureShards::~CaptureShards() {
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->stop = true;
    }
    w->wake.notify_one();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void CaptureShards::Dispatch(capture::RawEvent ev) {
  uint64_t key = 0, ts = 0;
  if (!ShardKey(ev, &key, &ts)) {
    ++malformed_;
    return;
  }
  Worker& w = *workers_[Mix(key) % workers_.size()];
  const size_t at = w.pending.size();
  w.pending.resize(at + kPrefix + Padded(ev.size()));
  const uint64_t len = ev.size();
  std::memcpy(w.pending.data() + at, &len, sizeof len);
  std::memcpy(w.pending.data() + at + kPrefix, ev.data(), ev.size());
  w.dispatched_ns = std::max(w.dispatched_ns, ts);
  latest_dispatched_ns_ = std::max(latest_dispatched_ns_, ts);
  if (w.pending.size() >= options_.batch_bytes) HandOver(w);
}

void CaptureShards::Flush() {
  for (auto& w : workers_) {
    if (!w->pending.empty()) HandOver(*w);
  }
}

void CaptureShards::HandOver(Worker& w) {
  {
    std::unique_lock<std::mutex> lock(w.mu);
    if (w.inbox.size() >= options_.max_backlog_bytes) {
      ++backlog_waits_;
      w.drained.wait(lock, [&] { return w.inbox.size() < options_.max_backlog_bytes || w.done; });
    }
    w.caught_up.store(false, std::memory_order_relaxed);
    if (w.inbox.empty()) {
      w.inbox.swap(w.pending);  // the worker's last batch buffer comes back for reuse
    } else {
      w.inbox.insert(w.inbox.end(), w.pending.begin(), w.pending.end());
    }
  }
  w.pending.clear();
  w.wake.notify_one();
}

void CaptureShards::Work(Worker& w) {
  std::vector<uint8_t> batch;
  const auto tick = std::chrono::nanoseconds(options_.tick_interval_ns);
  auto build = [&w] {
    for (auto& r : w.records) w.built.push_back(w.builder.BuildDeferredPtr(std::move(r)));
    w.records.clear();
  };
  while (true) {
    bool finishing = false;
    {
      std::unique_lock<std::mutex> lock(w.mu);
      w.wake.wait_for(lock, tick, [&] { return !w.inbox.empty() || w.finish || w.stop; });
      if (w.stop) break;
      batch.clear();
      batch.swap(w.inbox);
      finishing = w.finish;
    }
    w.drained.notify_one();
    for (size_t at = 0; at + kPrefix <= batch.size();) {
      uint64_t len = 0;
      std::memcpy(&len, batch.data() + at, sizeof len);
      w.tracker.OnEvent(capture::RawEvent(batch.data() + at + kPrefix, len), w.records);
      if (!w.records.empty()) build();
      at += kPrefix + Padded(len);
    }
    const uint64_t now = options_.event_time ? w.tracker.latest_event_ns() : core::MonotonicNowNs();
    if (now >= w.last_tick_ns + options_.tick_interval_ns) {
      w.tracker.Tick(now, w.records);
      build();
      w.last_tick_ns = now;
    }
    if (finishing) {
      w.tracker.CloseAll(w.records);
      build();
    }
    const uint64_t wall = core::MonotonicNowNs();
    const bool counters_due = finishing || wall >= w.last_counters_ns + 1'000'000'000;
    if (counters_due) w.last_counters_ns = wall;
    Publish(w, counters_due);
    if (finishing) {
      std::lock_guard<std::mutex> lock(w.mu);
      w.done = true;
      w.drained.notify_all();
      break;
    }
  }
}

void CaptureShards::Publish(Worker& w, bool with_counters) {
  // The tracker's counters walk every connection: at most once a second.
  conn::TrackerCounters counters;
  if (with_counters) counters = w.tracker.counters();
  std::vector<uint64_t>& unclaimed = w.tracker.unclaimed_sockets();
  {
    std::lock_guard<std::mutex> lock(w.out_mu);
    if (w.out.empty()) {
      w.out.swap(w.built);
    } else {
      for (auto& s : w.built) w.out.push_back(std::move(s));
    }
    w.unclaimed.insert(w.unclaimed.end(), unclaimed.begin(), unclaimed.end());
    if (with_counters) w.counters = counters;
    w.open_connections = w.tracker.open_connections();
    w.buffered_bytes = w.tracker.buffered_bytes();
  }
  w.built.clear();
  unclaimed.clear();
  w.processed_ns.store(w.tracker.latest_event_ns(), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(w.mu);
    if (w.inbox.empty()) w.caught_up.store(true, std::memory_order_release);
  }
}

void CaptureShards::TakeSpans(std::vector<std::deque<trace::SpanPtr>>& out) {
  out.resize(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker& w = *workers_[i];
    std::lock_guard<std::mutex> lock(w.out_mu);
    for (auto& s : w.out) out[i].push_back(std::move(s));
    w.out.clear();
  }
}

void CaptureShards::TakeUnclaimed(std::vector<uint64_t>& out) {
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->out_mu);
    out.insert(out.end(), w->unclaimed.begin(), w->unclaimed.end());
    w->unclaimed.clear();
  }
}

void CaptureShards::Finish() {
  if (finished_) return;
  finished_ = true;
  Flush();
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->finish = true;
    }
    w->wake.notify_one();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

uint64_t CaptureShards::ProgressEventNs() const {
  uint64_t progress = latest_dispatched_ns_;
  for (const auto& w : workers_) {
    // A worker that has processed everything it was given holds nothing back;
    // pending (not yet handed over) events count as not processed.
    const bool idle = w->pending.empty() && w->caught_up.load(std::memory_order_acquire);
    if (!idle) progress = std::min(progress, w->processed_ns.load(std::memory_order_acquire));
  }
  return progress;
}

bool CaptureShards::AllCaughtUp() const {
  for (const auto& w : workers_) {
    if (!w->pending.empty() || !w->caught_up.load(std::memory_order_acquire)) return false;
  }
  return true;
}

conn::TrackerCounters CaptureShards::counters() const {
  conn::TrackerCounters total;
  for (const auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->out_mu);
    AddTrackerCounters(total, w->counters);
  }
  return total;
}

size_t CaptureShards::open_connections() const {
  size_t n = 0;
  for (const auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->out_mu);
    n += w->open_connections;
  }
  return n;
}

size_t CaptureShards::buffered_bytes() const {
  size_t n = 0;
  for (const auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->out_mu);
    n += w->buffered_bytes;
  }
  return n;
}

}  // namespace sonde::pipeline
