// The JSON API over a real httplib server and a real SQLite store: parameter
// validation (400 with a message), escaping-safe JSON, trace by id.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/api/http_api.h"
#include "server/api/json.h"
#include "server/api/params.h"
#include "server/store/storage.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using nlohmann::json;
constexpr uint64_t kSec = 1'000'000'000;
constexpr uint32_t kUiPort = 18080;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions o;
    o.path = testing::TestStoragePath(dir_.path());
    auto s = OpenStorage(o);
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    now_ = testing::NowNs();
    v1::Batch b;
    b.set_sequence(1);
    auto span = testing::MakeSpan({.trace = 0xabc, .id = 1, .service = "gw", .endpoint = "GET /x",
                                   .start_ns = now_ - 10 * kSec, .end_ns = now_ - 10 * kSec + 3'000'000});
    auto* h = span.add_request_headers();
    h->set_name("x-evil");
    h->set_value("<script>alert(1)</script>");
    auto* bad = span.add_request_headers();
    bad->set_name("x-bytes");
    bad->set_value(std::string("\xff\xfe ok", 5));  // not UTF-8
    *b.add_spans() = span;
    *b.add_spans() = testing::MakeSpan({.trace = 0xabc, .id = 2, .parent = 1, .kind = v1::SPAN_KIND_CLIENT,
                                        .service = "gw", .endpoint = "GET /x",
                                        .start_ns = now_ - 10 * kSec + 1000, .end_ns = now_ - 10 * kSec + 2'000'000});
    ASSERT_TRUE(store_->WriteBatch({"h", "n", "i"}, b).ok());
    HttpApiOptions options{"", [this] { return now_; }};
    options.self_listeners = {{"127.0.0.1", kUiPort}};  // as if the UI listened there
    api_ = std::make_unique<HttpApi>(store_.get(), nullptr, std::move(options));
    api_->Register(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    for (int i = 0; i < 100 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::pair<int, json> GetJson(const std::string& path) {
    auto r = client_->Get(path.c_str());
    if (!r) return {0, {}};
    json j = json::parse(r->body, nullptr, false);
    return {r->status, j};
  }

  testing::TempDir dir_;
  std::unique_ptr<Storage> store_;
  uint64_t now_ = 0;
  std::unique_ptr<HttpApi> api_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ApiTest, MalformedParametersGet400WithAMessage) {
  const char* bad[] = {
      "/api/traces?limit=abc",          "/api/traces?limit=0",
      "/api/traces?limit=100000",       "/api/traces?min_duration=fast",
      "/api/traces?min_duration=5parsecs", "/api/traces?status=99",
      "/api/traces?from=yesterday",     "/api/traces?from=10&to=5",
      "/api/traces?from=1&last=1h",     "/api/traces?attr=novalue",
      "/api/traces?error=maybe",        "/api/traces?bogus=1",
      "/api/endpoints?source=X",        "/api/endpoints?kind=sideways",
      "/api/red?step=0s",               "/api/red?step=1s&last=30d",
      "/api/tcp?port=70000",            "/api/profile/flame?cpu=sideways",
      "/api/profile/flame?pid=-3",      "/api/profile/diff?a_from=1",
      "/api/traces/xyz",                "/api/traces/0123",
      "/api/requests?status_class=9",
  };
  for (const char* path : bad) {
    auto [code, body] = GetJson(path);
    EXPECT_EQ(code, 400) << path;
    ASSERT_TRUE(body.is_object()) << path;
    EXPECT_TRUE(body.contains("error")) << path;
    EXPECT_FALSE(body["error"].get<std::string>().empty()) << path;
  }
}

TEST_F(ApiTest, SqlLookingValuesAreJustValues) {
  auto [code, body] = GetJson("/api/traces?service=gw'%20OR%20'1'='1&last=1h");
  EXPECT_EQ(code, 200);
  EXPECT_TRUE(body["traces"].empty());
  auto [code2, body2] = GetJson("/api/traces?service=gw;DROP%20TABLE%20spans&last=1h");
  EXPECT_EQ(code2, 200);
  auto [code3, body3] = GetJson("/api/traces?service=gw&last=1h");
  EXPECT_EQ(code3, 200);
  EXPECT_EQ(body3["traces"].size(), 1u);  // the table is still there
}

TEST_F(ApiTest, SearchThenFetchTraceById) {
  auto [code, body] = GetJson("/api/traces?service=gw&min_duration=1ms&last=5m");
  ASSERT_EQ(code, 200);
  ASSERT_EQ(body["traces"].size(), 1u);
  const std::string id = body["traces"][0]["trace_id"];
  EXPECT_EQ(body["traces"][0]["span_count"], 2);
  auto [c2, trace] = GetJson("/api/traces/" + id);
  ASSERT_EQ(c2, 200);
  ASSERT_EQ(trace["spans"].size(), 2u);
  EXPECT_EQ(trace["spans"][0]["depth"], 0);
  EXPECT_EQ(trace["spans"][1]["parent_index"], trace["spans"][0]["index"]);
  // Header values come back verbatim as JSON strings (the UI renders them as
  // text); invalid UTF-8 is replaced rather than failing the response.
  const auto& headers = trace["spans"][0]["request_headers"];
  EXPECT_EQ(headers[0]["value"], "<script>alert(1)</script>");
  EXPECT_NE(headers[1]["value"].get<std::string>().find(" ok"), std::string::npos);

  auto [c3, missing] = GetJson("/api/traces/" + std::string(32, '0'));
  EXPECT_EQ(c3, 404);
  // Outside the time range: nothing.
  auto [c4, old] = GetJson("/api/traces?service=gw&last=1s");
  EXPECT_EQ(c4, 200);
  EXPECT_TRUE(old["traces"].empty());
}

TEST_F(ApiTest, ServicesEndpointsRedAndRequests) {
  auto [c1, services] = GetJson("/api/services");
  ASSERT_EQ(c1, 200);
  ASSERT_EQ(services["services"].size(), 1u);
  EXPECT_EQ(services["services"][0]["count"], 2);
  auto [c2, eps] = GetJson("/api/endpoints?service=gw&kind=server");
  ASSERT_EQ(c2, 200);
  ASSERT_EQ(eps["endpoints"].size(), 1u);
  EXPECT_EQ(eps["endpoints"][0]["count"], 1);
  auto [c3, red] = GetJson("/api/red?service=gw&endpoint=GET%20/x&last=1m&step=10s");
  ASSERT_EQ(c3, 200);
  EXPECT_EQ(red["source"], "spans");
  ASSERT_EQ(red["points"].size(), 1u);
  EXPECT_EQ(red["points"][0]["requests"], 1);
  EXPECT_NEAR(red["points"][0]["p50_ms"].get<double>(), 3.0, 0.01);
  auto [c4, reqs] = GetJson("/api/requests?last=1m&kind=server");
  ASSERT_EQ(c4, 200);
  EXPECT_EQ(reqs["requests"].size(), 1u);
  auto [c5, nf] = GetJson("/api/nope");
  EXPECT_EQ(c5, 404);
}

// Sonde's own server is hidden from services and the map unless asked
// (include_self=1); a bad value is a 400, not a silent default.
TEST_F(ApiTest, SondeOwnComponentsHiddenUnlessIncluded) {
  v1::Batch b;
  b.set_sequence(2);
  for (uint64_t i = 0; i < 3; ++i) {
    *b.add_spans() = testing::MakeSpan({.trace = 0xdef + i, .id = 10 + i, .service = "sonde-server",
                                        .endpoint = "GET /api/services", .start_ns = now_ - 5 * kSec,
                                        .end_ns = now_ - 5 * kSec + 1'000'000});
  }
  ASSERT_TRUE(store_->WriteBatch({"h", "n", "i"}, b).ok());
  auto names = [](const json& j, const char* list, const char* key) {
    std::vector<std::string> out;
    for (const auto& x : j[list]) out.push_back(x[key].get<std::string>());
    return out;
  };
  auto [c1, hidden] = GetJson("/api/services?last=1m");
  ASSERT_EQ(c1, 200);
  EXPECT_EQ(names(hidden, "services", "service"), std::vector<std::string>{"gw"});
  EXPECT_EQ(hidden["hidden_self"], json::array({"sonde-server"}));
  auto [c2, shown] = GetJson("/api/services?last=1m&include_self=1");
  ASSERT_EQ(c2, 200);
  EXPECT_EQ(names(shown, "services", "service"), (std::vector<std::string>{"gw", "sonde-server"}));
  EXPECT_EQ(shown["services"][1]["self"], true);
  EXPECT_EQ(shown["services"][1]["count"], 3);
  EXPECT_EQ(shown["hidden_self"].size(), 0u);
  auto [c3, map] = GetJson("/api/map?last=1m");
  ASSERT_EQ(c3, 200);
  for (const auto& id : names(map, "nodes", "id")) EXPECT_NE(id, "sonde-server");
  auto [c4, map_self] = GetJson("/api/map?last=1m&include_self=1");
  ASSERT_EQ(c4, 200);
  auto ids = names(map_self, "nodes", "id");
  EXPECT_NE(std::find(ids.begin(), ids.end(), "sonde-server"), ids.end());
  EXPECT_EQ(GetJson("/api/services?include_self=yes").first, 400);
}

// The request log and the trace search leave out Sonde's own traffic by
// default, in the store (so `limit` counts what is shown): the server's spans
// and a browser's calls to the server's listener; a call to the same port on
// another host is not Sonde's. include_self=1 shows everything. Runs on
// SQLite here and on ClickHouse in clickhouse_generic_storage_test.
TEST_F(ApiTest, RequestsAndTracesHideSondeOwnTrafficUnlessIncluded) {
  v1::Batch b;
  b.set_sequence(3);
  auto at = [&](double seconds_ago) { return now_ - static_cast<uint64_t>(seconds_ago * 1e9); };
  auto client_to = [](v1::Span s, const std::string& address, uint32_t port) {
    s.mutable_server()->set_address(address);
    s.mutable_server()->set_port(port);
    return s;
  };
  *b.add_spans() = testing::MakeSpan({.trace = 0x100, .id = 100, .service = "shop", .endpoint = "GET /buy",
                                      .start_ns = at(4), .end_ns = at(4) + 2'000'000});
  // The same port as the UI, another host: the user's own call.
  *b.add_spans() = client_to(testing::MakeSpan({.trace = 0x101, .id = 101, .kind = v1::SPAN_KIND_CLIENT,
                                                .service = "shop", .endpoint = "GET /stock",
                                                .start_ns = at(3.5), .end_ns = at(3.5) + 1'000'000}),
                             "10.0.0.9", kUiPort);
  // The browser asking the UI, and the server answering it (newest of all).
  *b.add_spans() = client_to(testing::MakeSpan({.trace = 0x200, .id = 200, .kind = v1::SPAN_KIND_CLIENT,
                                                .service = "chromium", .endpoint = "GET /api/traces",
                                                .start_ns = at(2), .end_ns = at(2) + 3'000'000}),
                             "127.0.0.1", kUiPort);
  *b.add_spans() = testing::MakeSpan({.trace = 0x200, .id = 201, .parent = 200, .service = "sonde-server",
                                      .endpoint = "GET /api/traces", .start_ns = at(2) + 100'000,
                                      .end_ns = at(2) + 2'000'000});
  *b.add_spans() = client_to(testing::MakeSpan({.trace = 0x201, .id = 202, .kind = v1::SPAN_KIND_CLIENT,
                                                .service = "chromium", .endpoint = "GET /app.js",
                                                .start_ns = at(1), .end_ns = at(1) + 1'000'000}),
                             "127.0.0.1", kUiPort);
  ASSERT_TRUE(store_->WriteBatch({"h", "n", "i"}, b).ok());
  auto services = [](const json& list, const char* key) {
    std::multiset<std::string> out;
    for (const auto& x : list) out.insert(x[key].get<std::string>());
    return out;
  };
  using Names = std::multiset<std::string>;

  auto [c1, requests] = GetJson("/api/requests?last=1m");
  ASSERT_EQ(c1, 200);
  EXPECT_EQ(services(requests["requests"], "service"), (Names{"gw", "gw", "shop", "shop"}));
  // The two newest shown rows, though Sonde's own are newer still.
  auto [c2, newest] = GetJson("/api/requests?last=1m&limit=2");
  ASSERT_EQ(c2, 200);
  EXPECT_EQ(services(newest["requests"], "service"), (Names{"shop", "shop"}));
  auto [c3, all] = GetJson("/api/requests?last=1m&include_self=1");
  ASSERT_EQ(c3, 200);
  EXPECT_EQ(services(all["requests"], "service"),
            (Names{"gw", "gw", "shop", "shop", "chromium", "chromium", "sonde-server"}));

  auto [c4, traces] = GetJson("/api/traces?last=1m");
  ASSERT_EQ(c4, 200);
  EXPECT_EQ(services(traces["traces"], "root_service"), (Names{"gw", "shop", "shop"}));
  auto [c5, one] = GetJson("/api/traces?last=1m&limit=1");
  ASSERT_EQ(c5, 200);
  EXPECT_EQ(services(one["traces"], "root_service"), (Names{"shop"}));
  auto [c6, all_traces] = GetJson("/api/traces?last=1m&include_self=1");
  ASSERT_EQ(c6, 200);
  EXPECT_EQ(all_traces["traces"].size(), 5u);
  EXPECT_EQ(services(all_traces["traces"], "root_service").count("chromium"), 2u);
  // A service filter naming Sonde's own still needs include_self.
  EXPECT_TRUE(GetJson("/api/traces?last=1m&service=sonde-server").second["traces"].empty());
  EXPECT_EQ(GetJson("/api/traces?last=1m&service=sonde-server&include_self=1").second["traces"].size(), 1u);

  EXPECT_EQ(GetJson("/api/traces?include_self=maybe").first, 400);
  EXPECT_EQ(GetJson("/api/requests?include_self=2").first, 400);
}

// Hundreds of newer rows of a browser polling the UI do not hide an older
// user trace from the default search (ClickHouse reads them in growing pages).
TEST_F(ApiTest, OwnTrafficRowsDoNotCrowdOutOlderTraces) {
  v1::Batch b;
  b.set_sequence(4);
  *b.add_spans() = testing::MakeSpan({.trace = 0x300, .id = 300, .service = "shop", .endpoint = "GET /old",
                                      .start_ns = now_ - 8 * kSec, .end_ns = now_ - 8 * kSec + 1'000'000});
  ASSERT_TRUE(store_->WriteBatch({"h", "n", "i"}, b).ok());
  v1::Batch poll;  // one row per trace: more than the first pages hold
  poll.set_sequence(5);
  for (uint64_t i = 0; i < 450; ++i) {
    v1::Span s = testing::MakeSpan({.trace = 0x1000 + i, .id = 0x1000 + i, .kind = v1::SPAN_KIND_CLIENT,
                                    .service = "chromium", .endpoint = "GET /api/services",
                                    .start_ns = now_ - 6 * kSec + i * 1'000'000,
                                    .end_ns = now_ - 6 * kSec + i * 1'000'000 + 500'000});
    s.mutable_server()->set_address("127.0.0.1");
    s.mutable_server()->set_port(kUiPort);
    *poll.add_spans() = s;
  }
  ASSERT_TRUE(store_->WriteBatch({"h", "n", "i"}, poll).ok());
  auto [code, body] = GetJson("/api/traces?last=1m&endpoint=/old");
  ASSERT_EQ(code, 200);
  ASSERT_EQ(body["traces"].size(), 1u);
  auto [c2, unfiltered] = GetJson("/api/traces?last=1m&limit=2");
  ASSERT_EQ(c2, 200);
  ASSERT_EQ(unfiltered["traces"].size(), 2u);  // gw's and shop's, past 450 newer rows of the browser
  for (const auto& t : unfiltered["traces"]) EXPECT_NE(t["root_service"], "chromium");
  auto [c3, with_self] = GetJson("/api/traces?last=1m&limit=2&include_self=1");
  ASSERT_EQ(c3, 200);
  for (const auto& t : with_self["traces"]) EXPECT_EQ(t["root_service"], "chromium");
}

// A trace larger than max_trace_spans: the earliest spans, flagged truncated.
TEST(ApiTraceCap, LargeTraceIsTruncatedAndFlagged) {
  testing::TempDir dir;
  StorageOptions o;
  o.path = testing::TestStoragePath(dir.path());
  auto store = OpenStorage(o);
  ASSERT_TRUE(store.ok());
  const uint64_t now = testing::NowNs();
  v1::Batch b;
  b.set_sequence(1);
  for (uint64_t i = 1; i <= 50; ++i)
    *b.add_spans() = testing::MakeSpan({.trace = 0x77, .id = i, .parent = i > 1 ? uint64_t{1} : uint64_t{0}, .service = "gw",
                                        .start_ns = now - 60 * kSec + i * 1000, .end_ns = now - 50 * kSec});
  ASSERT_TRUE((*store)->WriteBatch({"h", "n", "i"}, b).ok());
  HttpApiOptions opts{"", [now] { return now; }, ""};
  opts.max_trace_spans = 20;
  HttpApi api(store->get(), nullptr, opts);
  httplib::Server server;
  api.Register(server);
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  for (int i = 0; i < 100 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get(("/api/traces/" + HexEncode(testing::TraceId(0x77))).c_str());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_EQ(j["span_count_total"], 50);
  EXPECT_EQ(j["spans"].size(), 20u);
  EXPECT_EQ(j["roots"].size(), 1u);  // the earliest span, the root, is kept
  server.stop();
  t.join();
}

// With a token: 401 for the API, a redirect to /login for UI pages, the
// bearer header or the cookie set by POST /api/login let a client in.
TEST(ApiAuthTest, TokenGuardsApiAndUi) {
  testing::TempDir dir;
  StorageOptions o;
  o.path = testing::TestStoragePath(dir.path());
  auto store = OpenStorage(o);
  ASSERT_TRUE(store.ok());
  HttpApi api(store->get(), nullptr, HttpApiOptions{"", nullptr, "s3cret-token"});
  httplib::Server server;
  api.Register(server);
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  for (int i = 0; i < 100 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  httplib::Client c("127.0.0.1", port);
  EXPECT_EQ(c.Get("/api/health")->status, 200);  // probes stay open
  EXPECT_EQ(c.Get("/api/stats")->status, 401);
  EXPECT_EQ(c.Get("/api/stats", {{"Authorization", "Bearer wrong-token!"}})->status, 401);
  EXPECT_EQ(c.Get("/api/stats", {{"Authorization", "Bearer s3cret-token"}})->status, 200);
  auto ui = c.Get("/");
  EXPECT_EQ(ui->status, 303);
  EXPECT_EQ(ui->get_header_value("Location"), "/login");
  EXPECT_EQ(c.Get("/login")->status, 200);
  auto bad = c.Post("/api/login", "token=nope", "application/x-www-form-urlencoded");
  EXPECT_EQ(bad->status, 401);
  EXPECT_FALSE(bad->has_header("Set-Cookie"));
  auto login = c.Post("/api/login", "token=s3cret-token", "application/x-www-form-urlencoded");
  EXPECT_EQ(login->status, 303);
  std::string cookie = login->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  cookie = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(c.Get("/api/stats", {{"Cookie", "theme=dark; " + cookie}})->status, 200);
  EXPECT_EQ(c.Get("/api/stats", {{"Cookie", "sonde_token=s3cret-tokex"}})->status, 401);
  server.stop();
  t.join();
}

TEST(Params, Durations) {
  EXPECT_EQ(*ParseDuration("250ms"), 250'000'000u);
  EXPECT_EQ(*ParseDuration("72h"), 72ull * 3600 * kSec);
  EXPECT_EQ(*ParseDuration("7d"), 7ull * 86400 * kSec);
  EXPECT_EQ(*ParseDuration("1.5s"), 1'500'000'000u);
  EXPECT_EQ(*ParseDuration("30"), 30 * kSec);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("ms").ok());
  EXPECT_FALSE(ParseDuration("5 parsecs").ok());
  EXPECT_FALSE(ParseDuration("99999999999d").ok());
}

}  // namespace
}  // namespace sonde::server
