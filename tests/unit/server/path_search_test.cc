// Trace and request search by what the user typed: the request path
// (url.path) as well as the templated endpoint, on the SQLite store.
#include <gtest/gtest.h>

#include "server/store/storage.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanSpec;

v1::Span WithPath(uint64_t trace, uint64_t id, const std::string& endpoint, const std::string& path, uint64_t start) {
  SpanSpec spec;
  spec.trace = trace;
  spec.id = id;
  spec.endpoint = endpoint;
  spec.start_ns = start;
  spec.end_ns = start + 1000;
  v1::Span s = MakeSpan(spec);
  auto* a = s.add_attributes();
  a->set_key("url.path");
  a->set_string_value(path);
  return s;
}

TEST(PathSearch, TracesAndRequestsMatchTheRequestPathNotOnlyTheRoute) {
  testing::TempDir dir;
  StorageOptions so;
  so.path = testing::TestStoragePath(dir.path());
  auto store = OpenStorage(so);
  ASSERT_TRUE(store.ok()) << store.status();
  const uint64_t now = testing::NowNs();
  v1::Batch b;
  b.set_sequence(1);
  *b.add_spans() = WithPath(1, 11, "GET /users/{id}", "/users/4242", now);
  *b.add_spans() = WithPath(2, 21, "GET /users/{id}", "/users/7", now + 1);
  *b.add_spans() = WithPath(3, 31, "GET /orders/{id}", "/orders/4242", now + 2);
  ASSERT_TRUE((*store)->WriteBatch({"h", "n", "i"}, b).ok());

  TraceQuery q;
  q.endpoint = "/users/4242";  // folded into GET /users/{id}: found by its path
  auto traces = (*store)->SearchTraces(q);
  ASSERT_TRUE(traces.ok());
  ASSERT_EQ(traces->size(), 1u);
  EXPECT_EQ((*traces)[0].trace_id, HexEncode(testing::TraceId(1)));
  q.endpoint = "4242";  // a part of the path
  traces = (*store)->SearchTraces(q);
  ASSERT_TRUE(traces.ok());
  EXPECT_EQ(traces->size(), 2u);
  q.endpoint = "/users/{id}";  // the route still works
  traces = (*store)->SearchTraces(q);
  ASSERT_TRUE(traces.ok());
  EXPECT_EQ(traces->size(), 2u);
  q.endpoint = "/users/99";
  traces = (*store)->SearchTraces(q);
  ASSERT_TRUE(traces.ok());
  EXPECT_TRUE(traces->empty());

  RequestLogQuery r;
  r.endpoint = "/users/7";
  auto requests = (*store)->RequestLog(r);
  ASSERT_TRUE(requests.ok());
  ASSERT_EQ(requests->size(), 1u);
  EXPECT_EQ((*requests)[0].span.span_id(), testing::SpanId(21));
}

}  // namespace
}  // namespace sonde::server
