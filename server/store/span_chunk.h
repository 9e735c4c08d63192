#pragma once
// The span_chunks row format, shared by writes (which fill the rows) and
// queries (which prefilter on the row's columns, then decode and check each
// span). A row holds one trace's spans of one batch:
//  - summary columns: services/endpoints/attrs are "\n"-separated distinct
//    values (AddDistinct), sources/kinds/status_classes bit masks;
//  - `data`: 'R' + a serialized v1::Batch holding only spans, or 'S' + a zstd
//    frame of the same.
#include <zstd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sonde/v1/ingest.pb.h"

namespace sonde::server::span_chunk {

// ----- per-span facts (the same on both sides) ---------------------------

bool IsError(const v1::Span& s);
std::string_view ServiceOf(const v1::Span& s);   // service name, else comm, else "unknown"
std::string_view EndpointOf(const v1::Span& s);  // endpoint, else span name
uint64_t DurationOf(const v1::Span& s);
bool HasParent(const v1::Span& s);               // a non-zero parent span id
int StatusClassBit(int http_status);             // bit of the status class (1 << 10: out of range)

// One attribute as "key=value" text (the form attr= filters match exactly).
void AppendAttribute(const v1::Attribute& a, std::string* out);
// "\nkey=value\n..." so that find("\nkey=value\n") finds one attribute.
std::string AttributeText(const v1::Span& s);

// ----- summary lists -----------------------------------------------------

// A list that grew past 4 KiB is marked "full": it then matches any filter
// (rows are prefiltered in SQL, every span is checked exactly after decoding).
constexpr std::string_view kListFull = "\n*\n";

// Appends `value` to a "\n"-separated list of distinct values ("\n" first).
void AddDistinct(std::string* list, std::string_view value);

// ----- a row's summary and the per-second rollup (both backends) ----------

// The summary columns of one span_chunks row, built span by span.
struct RowSummary {
  uint64_t start = UINT64_MAX, end = 0, max_dur = 0, errors = 0;
  int sources = 0, kinds = 0, status_classes = 0;
  // No parent first, then earliest, then longest.
  const v1::Span* root = nullptr;
  std::string services, endpoints, attrs;  // AddDistinct lists ("\n" when none)

  void Reset();
  void Add(const v1::Span& sp);
  // After the last Add: an empty attribute list is stored as "\n".
  void Finish();

 private:
  std::string attr_line_;
};

// span_rollup rows: spans per second, source, kind, service and endpoint.
// Service and endpoint views point into the spans added: keep them alive
// until the rows are written.
class Rollup {
 public:
  struct Row {
    uint64_t second = 0;
    std::string_view service, endpoint;
    int source = 0, kind = 0;
    uint64_t count = 0, errors = 0, dur_sum = 0, dur_max = 0;
  };
  void Add(const v1::Span& sp);
  const std::unordered_map<std::string, Row>& rows() const { return rows_; }

 private:
  std::unordered_map<std::string, Row> rows_;
  std::string key_;
};

// ----- the data blob -----------------------------------------------------

// Starts an uncompressed blob ('R').
void StartData(std::string* data);
// Appends `span` as one `spans` field of a v1::Batch.
void AppendSpan(const v1::Span& span, std::string* data);
// The blob to store for `data` (from StartData/AppendSpan): 'S' + a zstd
// frame built in `packed` when that is smaller, else `data` itself.
std::string_view Compress(const std::string& data, ZSTD_CCtx* zstd, int level, std::string* packed);
// Decodes a stored blob into `out` (a Batch holding only spans); `scratch`
// holds the decompressed bytes. False on a damaged blob.
bool Decode(std::string_view blob, v1::Batch* out, std::string* scratch);

}  // namespace sonde::server::span_chunk
