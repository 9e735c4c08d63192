#pragma once
// `--workers N` (N > 1): connection tracking, protocol parsing and span
// building -- about two thirds of the agent's CPU per request -- sharded over
// N worker threads, so that one agent can follow a gateway with more cores
// than one thread keeps up with.
//
// The capture thread hands every raw event to one worker chosen by its socket
// (the socket's inode, or pid+fd when the kernel could not name it), so a
// connection lives on one worker for its whole life and its bytes stay in
// order. Each worker owns a ConnectionTracker with its protocol sessions and
// a SpanBuilder, and hands finished (deferred) spans back. Linking, joining,
// RED, sampling and the sinks stay on the pipeline thread: they need every
// span of the node.
//
// Events travel in batches (one hand-over per worker per ring-buffer poll,
// not one lock per event). A worker more than `max_backlog_bytes` behind makes
// the capture thread wait, so backlog turns into ring-buffer pressure, which
// the kernel counts, instead of unbounded memory.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/capture/event_source.h"
#include "agent/conn/tracker.h"
#include "agent/core/clock.h"
#include "agent/trace/service_namer.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"

namespace sonde::pipeline {

struct CaptureShardOptions {
  size_t workers = 2;
  conn::TrackerOptions tracker;  // per worker: connection and byte bounds are divided by `workers`
  uint64_t tick_interval_ns = 100'000'000;
  bool event_time = false;  // recordings: timers follow event time
  size_t max_backlog_bytes = 4u << 20;   // per worker (~15k events)
  size_t batch_bytes = 64u << 10;        // a batch is handed over early past this size
};

// TrackerCounters summed over workers.
void AddTrackerCounters(conn::TrackerCounters& to, const conn::TrackerCounters& from);

class CaptureShards {
 public:
  // A fresh ServiceNamer per worker (their caches are not shared); may be empty.
  using NamerFactory = std::function<std::unique_ptr<trace::ServiceNamer>()>;

  CaptureShards(CaptureShardOptions options, const core::MonotonicToRealtime& clock, const NamerFactory& namers);
  ~CaptureShards();  // stops and joins the workers (Finish first to keep what they hold)
  CaptureShards(const CaptureShards&) = delete;
  CaptureShards& operator=(const CaptureShards&) = delete;

  // Capture thread.
  void Dispatch(capture::RawEvent ev);
  void Flush();  // hand every pending batch over (end of a poll)
  // Spans built since the last call, appended to `out` (one queue per worker,
  // each in the order its worker finished them); sockets no protocol claimed
  // (the source can stop copying them).
  void TakeSpans(std::vector<std::deque<trace::SpanPtr>>& out);
  void TakeUnclaimed(std::vector<uint64_t>& out);
  // Closes every connection on every worker and waits for them; spans still
  // held are then available to TakeSpans.
  void Finish();

  // Event time up to which every worker has processed what it was given
  // (event_time mode: the pipeline's "now", so that it never runs ahead of
  // spans still being built).
  uint64_t ProgressEventNs() const;
  // Every worker has processed everything handed to it (and nothing waits to be handed over).
  bool AllCaughtUp() const;
  uint64_t latest_dispatched_ns() const { return latest_dispatched_ns_; }
  conn::TrackerCounters counters() const;  // as of each worker's last publication
  size_t open_connections() const;
  size_t buffered_bytes() const;
  uint64_t backlog_waits() const { return backlog_waits_; }
  uint64_t malformed() const { return malformed_; }
  size_t size() const { return workers_.size(); }

 private:
  struct Worker;
  void HandOver(Worker& w);
  void Work(Worker& w);
  void Publish(Worker& w, bool with_counters);

  CaptureShardOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t latest_dispatched_ns_ = 0;
  uint64_t backlog_waits_ = 0;
  uint64_t malformed_ = 0;
  bool finished_ = false;
};

}  // namespace sonde::pipeline
