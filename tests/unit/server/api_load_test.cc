// Queries cannot take the server down (issue #17): a trace of 40,000 spans
// fetched 8 times at once over the real listener (GuardedHttpServer, the
// limits sonde-server uses) while /api/health keeps answering; each answer
// carries at most max_trace_spans spans, flagged truncated.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/http/guarded_server.h"
#include "server/api/http_api.h"
#include "server/api/json.h"
#include "server/store/storage.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kSec = 1'000'000'000;

TEST(ApiLoad, HealthAnswersWhileLargeTracesAreAssembled) {
  testing::TempDir dir;
  StorageOptions o;
  o.path = (dir.path() / "sonde.db").string();
  auto store = OpenStorage(o);
  ASSERT_TRUE(store.ok());
  const uint64_t now = testing::NowNs();
  for (uint64_t b = 0; b < 20; ++b) {  // 40,000 spans of one trace in 20 batches
    v1::Batch batch;
    batch.set_sequence(b + 1);
    for (uint64_t i = 1; i <= 2000; ++i) {
      const uint64_t id = b * 2000 + i;
      *batch.add_spans() = testing::MakeSpan({.trace = 0x40, .id = id, .parent = id > 1 ? (id - 1) / 2 + 1 : 0,
                                              .kind = id % 2 ? v1::SPAN_KIND_SERVER : v1::SPAN_KIND_CLIENT,
                                              .service = "s" + std::to_string(id % 7),
                                              .start_ns = now - 60 * kSec + id * 1000,
                                              .end_ns = now - 60 * kSec + id * 1000 + 500});
    }
    ASSERT_TRUE((*store)->WriteBatch({"h", "n", "i"}, batch).ok());
  }
  HttpApi api(store->get(), nullptr, HttpApiOptions{"", [now] { return now; }, ""});
  net::HttpLimits limits;  // as sonde-server's :8080
  limits.threads = 16;
  limits.max_connections = 128;
  auto server = net::GuardedHttpServer::Create(limits);
  ASSERT_TRUE(server.ok());
  api.Register(**server);
  const int port = (*server)->bind_to_any_port("127.0.0.1");
  std::thread t([&] { (*server)->listen_after_bind(); });
  for (int i = 0; i < 200 && !(*server)->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const std::string path = "/api/traces/" + HexEncode(testing::TraceId(0x40));
  std::atomic<int> ok{0};
  std::atomic<double> slowest{0};
  std::vector<std::thread> queries;
  for (int q = 0; q < 8; ++q) {
    queries.emplace_back([&] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(120, 0);
      const auto t0 = Clock::now();
      auto r = c.Get(path.c_str());
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (s > slowest.load()) slowest = s;
      if (!r || r->status != 200) return;
      auto j = nlohmann::json::parse(r->body);
      if (j["truncated"] == true && j["span_count_total"] == 40000 && j["spans"].size() == 10000u) ++ok;
    });
  }
  double worst_health = 0;
  httplib::Client h("127.0.0.1", port);
  for (int i = 0; i < 10; ++i) {
    const auto t0 = Clock::now();
    auto r = h.Get("/api/health");
    worst_health = std::max(worst_health, std::chrono::duration<double>(Clock::now() - t0).count());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& q : queries) q.join();
  std::printf("8 x GET of a 40,000-span trace: slowest %.2f s; /api/health worst %.3f s\n", slowest.load(),
              worst_health);
  EXPECT_EQ(ok.load(), 8);
  EXPECT_LT(worst_health, 1.0);
  (*server)->stop();
  t.join();
}

}  // namespace
}  // namespace sonde::server
