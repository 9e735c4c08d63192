#include "server/store/metered_storage.h"

namespace sonde::server {

const char* MeteredStorage::OpName(Op op) {
  switch (op) {
    case kWriteBatch: return "write_batch";
    case kEndpoints: return "endpoints";
    case kSearchTraces: return "search_traces";
    case kTrace: return "trace";
    case kRequestLog: return "request_log";
    case kRequestRecords: return "request_records";
    case kRedWindows: return "red_windows";
    case kSpanSamples: return "span_samples";
    case kTcpWindows: return "tcp_windows";
    case kStacks: return "stacks";
    case kProcesses: return "processes";
    case kRetention: return "retention";
    case kOpCount: break;
  }
  return "unknown";
}

void MeteredStorage::Record(Op op, bool error, std::chrono::steady_clock::duration took) {
  OpMetrics& m = ops_[op];
  ++m.calls;
  if (error) ++m.errors;
  const auto ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  m.nanos += ns;
  const double seconds = static_cast<double>(ns) / 1e9;
  size_t b = 0;
  while (b < kBucketsSeconds.size() && seconds > kBucketsSeconds[b]) ++b;
  ++m.buckets[b];
}

}  // namespace sonde::server
