#pragma once
// Record -> system span (S): OTel HTTP semantic-convention attributes, kind
// from the socket role, status per semconv (5xx error; 4xx error on client
// spans only), trace identity from a valid incoming context or a new trace.
#include <cstdint>

#include "agent/conn/conn_record.h"
#include "agent/core/clock.h"
#include "agent/trace/service_namer.h"
#include "agent/trace/span.h"

namespace sonde::trace {

// Fast non-cryptographic id source (xoshiro256**), seeded per builder.
class IdGenerator {
 public:
  explicit IdGenerator(uint64_t seed);
  TraceId NewTraceId();
  SpanId NewSpanId();

 private:
  uint64_t Next();
  uint64_t s_[4];
};

class SpanBuilder {
 public:
  // `clock` converts monotonic syscall times to Unix time; it must outlive the builder.
  explicit SpanBuilder(const core::MonotonicToRealtime& clock, uint64_t seed = 0);

  // A complete span (tests, tools): BuildDeferred then Complete.
  Span Build(const conn::ConnRecord& record);
  // The span's identity, timing, status and request line, enough to link it
  // and count it in RED; the record is kept aside in span.deferred.
  Span BuildDeferred(conn::ConnRecord&& record);
  // The same, built in place on the heap (the pipeline's form).
  SpanPtr BuildDeferredPtr(conn::ConnRecord&& record);
  // Adds what BuildDeferred left out: semconv attributes, address text and
  // headers. Called only for spans that leave the agent (after sampling);
  // redact span.deferred->record before. No-op on complete spans.
  static void Complete(Span& span);

  // A span whose sinks are done with it: its storage (strings, the deferred
  // record's holder) serves the next BuildDeferredPtr instead of a new
  // allocation. Same thread as the builder only.
  void Recycle(SpanPtr span);

  // Names services through `namer` (not owned; resolved once per process and
  // cached) instead of the process name.
  void set_service_namer(ServiceNamer* namer) { namer_ = namer; }

 private:
  void FillDeferred(conn::ConnRecord&& record, Span& s);

  const core::MonotonicToRealtime& clock_;
  IdGenerator ids_;
  std::vector<SpanPtr> free_;        // recycled spans (bounded)
  protocols::SpanDescription desc_;  // reused across records: its strings keep their capacity
  ServiceNamer* namer_ = nullptr;
};

// Lookups on built spans (used by the linker and sinks).
const std::string* StringAttribute(const Span& span, std::string_view key);
// "https" / "http" for HTTP-family spans (TLS plaintext or not), "" otherwise.
std::string_view UrlScheme(const Span& span);
int64_t IntAttribute(const Span& span, std::string_view key, int64_t fallback = 0);

}  // namespace sonde::trace
