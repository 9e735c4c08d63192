#pragma once
// The agent run in-process by kernel tests: socket capture on the given
// options and the pipeline on its own thread, every span kept (counts are
// compared exactly) and collected.
#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/capture/socket_capture.h"
#include "agent/pipeline/pipeline.h"
#include "tests/testlib/collect_sink.h"

namespace sonde::testlib {

class InProcessAgent {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessAgent>> Start(const capture::SocketCaptureOptions& capture) {
    auto cap = capture::SocketCapture::Create(capture);
    if (!cap.ok()) return cap.status();
    return std::make_unique<InProcessAgent>(Key{}, std::move(*cap));
  }
  // Through Start only (Key is private).
  struct Key {
    explicit Key() = default;
  };
  InProcessAgent(Key, std::unique_ptr<capture::SocketCapture> capture)
      : capture_(std::move(capture)), agent_(Options()), sink_(std::make_shared<CollectSink>()) {
    agent_.AddSink(sink_);
    thread_ = std::thread([this] { run_status_ = agent_.Run(*capture_, stop_); });
  }
  ~InProcessAgent() { (void)Stop(); }
  InProcessAgent(const InProcessAgent&) = delete;
  InProcessAgent& operator=(const InProcessAgent&) = delete;

  // Drains what is left, stops the pipeline and returns how its run ended.
  absl::Status Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    return run_status_;
  }
  pipeline::Agent& agent() { return agent_; }
  capture::SocketCapture& capture() { return *capture_; }
  CollectSink& sink() { return *sink_; }

 private:
  static pipeline::PipelineOptions Options() {
    pipeline::PipelineOptions po;
    po.print_json = false;
    po.poll_timeout_ms = 20;
    po.sampler.spans_per_second = 0;  // every span
    return po;
  }
  std::unique_ptr<capture::SocketCapture> capture_;
  pipeline::Agent agent_;
  std::shared_ptr<CollectSink> sink_;
  std::atomic<bool> stop_{false};
  absl::Status run_status_;
  std::thread thread_;
};

}  // namespace sonde::testlib
