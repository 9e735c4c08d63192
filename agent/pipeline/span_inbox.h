#pragma once
// Spans produced on other threads (OTLP receivers, packet capture) enter the
// pipeline through an inbox: any thread pushes, the pipeline thread drains it
// on every tick into Agent::EmitSpan, so sinks only ever run on one thread.
// Bounded: a full inbox drops the span and counts it. Its bytes (estimated)
// are a gauge for the OTLP memory limiter (agent/otlp/memory_limiter.h).
#include <atomic>
#include <memory>
#include <mutex>
#include <variant>
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
    pending_bytes_.fetch_add(ApproxBytes(span), std::memory_order_relaxed);
  }
  absl::Status Start(Agent& agent) override {
    agent_ = &agent;
    return absl::OkStatus();
  }
  void Tick(uint64_t /*now_unix_ns*/) override { Drain(); }
  void Stop() override { Drain(); }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t pending_bytes() const { return pending_bytes_.load(std::memory_order_relaxed); }

  // What a queued span holds: the struct and its strings and attributes.
  static size_t ApproxBytes(const trace::Span& s) {
    size_t n = sizeof(trace::Span) + s.name.size() + s.service_name.size() + s.status_message.size() +
               s.comm.size() + s.container_id.size() + s.endpoint.size() + s.operation.size() + s.route.size() +
               s.url_path.size() + s.url_query.size() + s.request_headers.byte_size() +
               s.response_headers.byte_size() + s.attributes.size() * sizeof(trace::Attribute);
    for (const auto& a : s.attributes) {
      n += a.key.size();
      if (const auto* text = std::get_if<std::string>(&a.value)) n += text->size();
    }
    return n;
  }

 private:
  void Drain() {
    if (agent_ == nullptr) return;
    std::vector<trace::Span> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(pending_);
      pending_bytes_.store(0, std::memory_order_relaxed);
    }
    for (auto& span : batch) agent_->EmitSpan(std::move(span));
  }

  const size_t capacity_;
  std::mutex mu_;
  std::vector<trace::Span> pending_;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> pending_bytes_{0};
  Agent* agent_ = nullptr;
};

}  // namespace sonde::pipeline
