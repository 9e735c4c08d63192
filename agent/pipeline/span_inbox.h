#pragma once
// Spans produced on other threads (OTLP receivers, packet capture) enter the
// pipeline through an inbox: any thread pushes, the pipeline thread drains it
// on every tick into Agent::EmitSpan, so sinks only ever run on one thread.
// Bounded: a full inbox drops the span and counts it.
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/pipeline/pipeline.h"
#include "agent/trace/span.h"

namespace sonde::pipeline {

class SpanInbox final : public trace::SpanSink, public Component {
 public:
  explicit SpanInbox(size_t capacity = 100000) : capacity_(capacity) {}

  void OnSpan(const trace::Span& span) override {
    std::lock_guard lock(mu_);
    if (pending_.size() >= capacity_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    pending_.push_back(span);
  }
  absl::Status Start(Agent& agent) override {
    agent_ = &agent;
    return absl::OkStatus();
  }
  void Tick(uint64_t /*now_unix_ns*/) override { Drain(); }
  void Stop() override { Drain(); }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void Drain() {
    if (agent_ == nullptr) return;
    std::vector<trace::Span> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(pending_);
    }
    for (auto& span : batch) agent_->EmitSpan(std::move(span));
  }

  const size_t capacity_;
  std::mutex mu_;
  std::vector<trace::Span> pending_;
  std::atomic<uint64_t> dropped_{0};
  Agent* agent_ = nullptr;
};

}  // namespace sonde::pipeline
