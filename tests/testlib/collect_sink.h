#pragma once
// A span sink for kernel tests: keeps every span the pipeline delivers (the
// pipeline thread writes, the test reads after stopping it).
#include <mutex>
#include <vector>

#include "agent/trace/span.h"

namespace sonde::testlib {

class CollectSink final : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& s) override {
    std::lock_guard<std::mutex> lock(mu);
    spans.push_back(s);
  }
  std::mutex mu;
  std::vector<trace::Span> spans;
};

}  // namespace sonde::testlib
