#pragma once
// Prints spans as JSON lines: what `sonde-agent run` shows when no server is
// configured, and what tests read.
#include <cstdio>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/trace/span.h"

namespace sonde::pipeline {

nlohmann::json SpanToJson(const trace::Span& span);

class JsonLinesSink final : public trace::SpanSink {
 public:
  // `out` is not owned; flushes after every line when `line_buffered`.
  explicit JsonLinesSink(std::FILE* out, bool line_buffered = true)
      : out_(out), line_buffered_(line_buffered) {}
  void OnSpan(const trace::Span& span) override;
  uint64_t lines() const { return lines_; }

 private:
  std::FILE* out_;
  bool line_buffered_;
  std::mutex mu_;
  std::string buf_;
  uint64_t lines_ = 0;
};

}  // namespace sonde::pipeline
