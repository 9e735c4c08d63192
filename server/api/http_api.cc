#include "server/api/http_api.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/api/api_auth.h"
#include "server/api/json.h"
#include "server/api/params.h"
#include "server/query/flame.h"
#include "server/query/red.h"
#include "server/query/service_map.h"
#include "server/query/trace_assembler.h"
#include "server/store/span_filters.h"
#include "server/store/storage.h"
#include "server/ui/assets.h"

namespace sonde::server {
namespace {

using nlohmann::json;

uint64_t SystemNowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Captured bytes need not be UTF-8: replace invalid sequences, never throw.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  res.set_header("Cache-Control", "no-store");
}

void ReplyError(httplib::Response& res, const absl::Status& st) {
  // A query past its deadline (--query-timeout) is 504 with what stopped it;
  // a store that cannot answer now (ClickHouse down) is 503.
  int code = st.code() == absl::StatusCode::kInvalidArgument    ? 400
             : st.code() == absl::StatusCode::kNotFound         ? 404
             : st.code() == absl::StatusCode::kDeadlineExceeded ? 504
             : st.code() == absl::StatusCode::kUnavailable      ? 503
                                                                : 500;
  Reply(res, code, {{"error", std::string(st.message())}});
}

ParamLookup Lookup(const httplib::Request& req) {
  return [&req](const std::string& name) -> std::optional<std::string> {
    if (!req.has_param(name.c_str())) return std::nullopt;
    return req.get_param_value(name.c_str());
  };
}

// Unwraps a StatusOr into `out` or replies 400/500 and returns false.
template <typename T>
bool Get(absl::StatusOr<T> v, T* out, httplib::Response& res) {
  if (!v.ok()) {
    ReplyError(res, v.status());
    return false;
  }
  *out = std::move(*v);
  return true;
}

// Rejects parameters the endpoint does not know: a typo should not silently
// widen a query.
bool OnlyKnown(const httplib::Request& req, std::initializer_list<const char*> known,
               httplib::Response& res) {
  for (const auto& [k, v] : req.params) {
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (!ok) {
      Reply(res, 400, {{"error", absl::StrCat("unknown parameter '", k, "'")}});
      return false;
    }
  }
  return true;
}

// Sonde's own components. The UI hides them unless asked (include_self=1):
// on a fresh install the server answering the browser is otherwise the
// busiest "service" and the first thing shown. The trace search, the request
// log and the map also hide clients' calls to the server's listeners (the
// browser's requests to the UI): storage.h, SelfTraffic.
using span_filters::IsSondeComponent;

// include_self: absent or 0 hides Sonde's own components, 1 shows them.
bool ParseIncludeSelf(const httplib::Request& req, bool* include, httplib::Response& res) {
  *include = false;
  if (!req.has_param("include_self")) return true;
  const std::string v = req.get_param_value("include_self");
  if (v != "0" && v != "1") {
    Reply(res, 400, {{"error", "parameter 'include_self': expected 0 or 1"}});
    return false;
  }
  *include = v == "1";
  return true;
}

}  // namespace

HttpApi::HttpApi(Storage* storage, const IngestCounters* counters, HttpApiOptions options)
    : storage_(storage), counters_(counters), options_(std::move(options)) {
  if (!options_.now_ns) options_.now_ns = SystemNowNs;
}

void HttpApi::Register(httplib::Server& server) {
  auto now = options_.now_ns;
  Storage* store = storage_;
  const auto self_listeners = options_.self_listeners;

  // Health stays open (liveness probes); login is how a browser gets in.
  server.Get("/api/health", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, {{"status", "ok"}});
  });
  auto auth = std::make_shared<ApiAuth>(options_.token);
  server.Post("/api/login", [auth](const httplib::Request& req, httplib::Response& res) { auth->Login(req, res); });
  server.Get("/login", [](const httplib::Request&, httplib::Response& res) { ApiAuth::LoginPage(res, false); });

  // Every other route is registered through this wrapper: 401 for the API,
  // a redirect to the login page for the UI.
  struct Guarded {
    httplib::Server& srv;
    std::shared_ptr<ApiAuth> auth;
    void Get(const std::string& pattern, httplib::Server::Handler handler) {
      srv.Get(pattern, [a = auth, h = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
        if (a->Authorized(req)) return h(req, res);
        if (req.path.rfind("/api/", 0) == 0) {
          res.set_header("WWW-Authenticate", "Bearer");
          return Reply(res, 401, {{"error", "missing or wrong token (Authorization: Bearer, or sign in at /login)"}});
        }
        res.set_redirect("/login", 303);
      });
    }
  } srv{server, auth};

  srv.Get("/api/stats", [store, this](const httplib::Request&, httplib::Response& res) {
    auto s = store->Stats();
    json j = {{"spans_stored", s.spans}, {"batches_stored", s.batches},
              {"duplicate_batches", s.duplicate_batches}};
    if (counters_) {
      j["ingest"] = {{"streams", counters_->streams.load()},
                     {"batches", counters_->batches.load()},
                     {"duplicate_batches", counters_->duplicate_batches.load()},
                     {"rejected_batches", counters_->rejected_batches.load()},
                     {"refused_streams", counters_->refused_streams.load()},
                     {"refused_disk_full", counters_->refused_disk_full.load()},
                     {"spans", counters_->spans.load()},
                     {"bytes", counters_->bytes.load()}};
    }
    Reply(res, 200, j);
  });

  // Services with their endpoints and span counts.
  srv.Get("/api/services", [store, now](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "include_self"}, res)) return;
    auto get = Lookup(req);
    EndpointQuery q;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    bool include_self = false;
    if (!ParseIncludeSelf(req, &include_self, res)) return;
    std::vector<EndpointSummary> eps;
    if (!Get(store->Endpoints(q), &eps, res)) return;
    std::map<std::string, json> services;
    std::set<std::string> hidden;
    for (const auto& e : eps) {
      const bool self = IsSondeComponent(e.service);
      if (self && !include_self) {
        hidden.insert(e.service);
        continue;
      }
      auto& s = services[e.service];
      if (s.is_null()) s = {{"service", e.service}, {"count", 0}, {"errors", 0}, {"endpoints", 0}, {"self", self}};
      s["count"] = s["count"].get<uint64_t>() + e.count;
      s["errors"] = s["errors"].get<uint64_t>() + e.errors;
      s["endpoints"] = s["endpoints"].get<uint64_t>() + 1;
    }
    json out = json::array();
    for (auto& [k, v] : services) out.push_back(std::move(v));
    Reply(res, 200, {{"services", out}, {"hidden_self", hidden}});
  });

  srv.Get("/api/endpoints", [store, now](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "service", "source", "kind"}, res)) return;
    auto get = Lookup(req);
    EndpointQuery q;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    if (!Get(ParseText(get, "service"), &q.service, res)) return;
    if (!Get(ParseSource(get), &q.source, res)) return;
    if (!Get(ParseKind(get), &q.kind, res)) return;
    std::vector<EndpointSummary> eps;
    if (!Get(store->Endpoints(q), &eps, res)) return;
    json out = json::array();
    for (const auto& e : eps) {
      out.push_back({{"service", e.service},
                     {"endpoint", e.endpoint},
                     {"source", SourceLetter(e.source)},
                     {"kind", KindName(e.kind)},
                     {"count", e.count},
                     {"errors", e.errors},
                     {"avg_ms", e.count ? static_cast<double>(e.duration_sum_ns) / static_cast<double>(e.count) / 1e6 : 0.0},
                     {"max_ms", static_cast<double>(e.duration_max_ns) / 1e6}});
    }
    Reply(res, 200, {{"endpoints", out}});
  });

  srv.Get("/api/red", [store, now](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "service", "endpoint", "step", "kind"}, res)) return;
    auto get = Lookup(req);
    RedQuery q;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    if (!Get(ParseText(get, "service"), &q.service, res)) return;
    if (!Get(ParseText(get, "endpoint"), &q.endpoint, res)) return;
    if (!Get(ParseKind(get), &q.kind, res)) return;
    uint64_t span = q.range.to_ns - q.range.from_ns;
    uint64_t step = std::max<uint64_t>(span / 120, 1'000'000'000);
    if (auto s = get("step")) {
      if (!Get(ParseDuration(*s), &step, res)) return;
      if (step < 1'000'000'000) return Reply(res, 400, {{"error", "parameter 'step' must be >= 1s"}});
      if (span / step > 10000) return Reply(res, 400, {{"error", "too many steps (max 10000)"}});
    }
    std::vector<StoredRedWindow> windows;
    if (!Get(store->RedWindows(q), &windows, res)) return;
    RedSeries series;
    if (!windows.empty()) {
      series = SeriesFromWindows(windows, q.range, step);
    } else {
      if (!q.kind) q.kind = v1::SPAN_KIND_SERVER;
      std::vector<SpanSample> samples;
      if (!Get(store->SpanSamples(q), &samples, res)) return;
      series = SeriesFromSamples(samples, q.range, step);
    }
    json j = RedJson(series);
    j["step_ms"] = static_cast<double>(step) / 1e6;
    Reply(res, 200, j);
  });

  srv.Get("/api/traces", [store, now, self_listeners](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "service", "endpoint", "status", "status_class",
                         "error", "min_duration", "attr", "limit", "include_self"}, res))
      return;
    auto get = Lookup(req);
    TraceQuery q;
    if (!ParseIncludeSelf(req, &q.self.include, res)) return;
    q.self.listeners = self_listeners;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    if (!Get(ParseText(get, "service"), &q.service, res)) return;
    if (!Get(ParseText(get, "endpoint"), &q.endpoint, res)) return;
    std::optional<int64_t> v;
    if (!Get(ParseInt(get, "status", 100, 599), &v, res)) return;
    if (v) q.http_status = static_cast<int>(*v);
    if (!Get(ParseInt(get, "status_class", 1, 5), &v, res)) return;
    if (v) q.status_class = static_cast<int>(*v);
    if (auto e = get("error")) {
      if (*e != "true" && *e != "false") return Reply(res, 400, {{"error", "parameter 'error' must be true or false"}});
      q.error = *e == "true";
    }
    if (auto d = get("min_duration")) {
      uint64_t ns = 0;
      if (!Get(ParseDuration(*d), &ns, res)) return;
      q.min_duration_ns = ns;
    }
    for (size_t i = 0; i < req.get_param_value_count("attr"); ++i) {
      AttributeFilter f;
      if (!Get(ParseAttributeFilter(req.get_param_value("attr", i)), &f, res)) return;
      q.attributes.push_back(std::move(f));
    }
    if (!Get(ParseInt(get, "limit", 1, 1000), &v, res)) return;
    if (v) q.limit = static_cast<int>(*v);
    std::vector<TraceSummary> traces;
    if (!Get(store->SearchTraces(q), &traces, res)) return;
    json out = json::array();
    for (const auto& t : traces) {
      out.push_back({{"trace_id", t.trace_id},
                     {"start_ms", static_cast<double>(t.start_ns) / 1e6},
                     {"duration_ms", static_cast<double>(t.end_ns - std::min(t.end_ns, t.start_ns)) / 1e6},
                     {"span_count", t.span_count},
                     {"error_count", t.error_count},
                     {"root_service", t.root_service},
                     {"root_endpoint", t.root_endpoint},
                     {"sources", t.sources}});
    }
    Reply(res, 200, {{"traces", out}});
  });

  const size_t max_trace_spans = std::max<size_t>(options_.max_trace_spans, 1);
  srv.Get(R"(/api/traces/([^/]+))", [store, max_trace_spans](const httplib::Request& req, httplib::Response& res) {
    std::string hex = req.matches[1];
    std::string id;
    if (hex.size() != 32 || !HexDecode(hex, &id))
      return Reply(res, 400, {{"error", "trace id must be 32 hex digits"}});
    std::vector<StoredSpan> spans;
    if (!Get(store->Trace(id), &spans, res)) return;
    if (spans.empty()) return Reply(res, 404, {{"error", "trace not found"}});
    const size_t total = spans.size();
    if (total > max_trace_spans) {  // keep the earliest: the trace's start and its roots
      auto by_start = [](const StoredSpan& a, const StoredSpan& b) {
        return a.span.start_unix_ns() < b.span.start_unix_ns();
      };
      std::nth_element(spans.begin(), spans.begin() + static_cast<std::ptrdiff_t>(max_trace_spans), spans.end(),
                       by_start);
      spans.resize(max_trace_spans);
    }
    AssembledTrace t = AssembleTrace(spans);
    json j = TraceJson(t);
    j["truncated"] = total > spans.size();
    j["span_count_total"] = total;
    Reply(res, 200, j);
  });

  srv.Get("/api/requests", [store, now, self_listeners](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "service", "endpoint", "status_class", "kind", "limit", "include_self"},
                   res))
      return;
    auto get = Lookup(req);
    RequestLogQuery q;
    if (!ParseIncludeSelf(req, &q.self.include, res)) return;
    q.self.listeners = self_listeners;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    if (!Get(ParseText(get, "service"), &q.service, res)) return;
    if (!Get(ParseText(get, "endpoint"), &q.endpoint, res)) return;
    if (!Get(ParseKind(get), &q.kind, res)) return;
    std::optional<int64_t> v;
    if (!Get(ParseInt(get, "status_class", 1, 5), &v, res)) return;
    if (v) q.status_class = static_cast<int>(*v);
    if (!Get(ParseInt(get, "limit", 1, 5000), &v, res)) return;
    if (v) q.limit = static_cast<int>(*v);
    std::vector<StoredSpan> spans;
    if (!Get(store->RequestLog(q), &spans, res)) return;
    std::vector<v1::RequestRecord> records;
    if (!Get(store->RequestRecords(q), &records, res)) return;
    json out = json::array();
    for (const auto& s : spans) out.push_back(SpanJson(s));
    json recs = json::array();
    for (const auto& r : records) recs.push_back(RecordJson(r));
    Reply(res, 200, {{"requests", out}, {"records", recs}});
  });

  srv.Get("/api/tcp", [store, now](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "server", "port"}, res)) return;
    auto get = Lookup(req);
    TcpQuery q;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    if (!Get(ParseText(get, "server"), &q.server_address, res)) return;
    std::optional<int64_t> v;
    if (!Get(ParseInt(get, "port", 1, 65535), &v, res)) return;
    if (v) q.server_port = static_cast<uint32_t>(*v);
    std::vector<StoredTcpWindow> windows;
    if (!Get(store->TcpWindows(q), &windows, res)) return;
    Reply(res, 200, {{"pairs", TcpPairsJson(windows)}});
  });

  auto parse_profile = [now](const httplib::Request& req, httplib::Response& res,
                             ProfileQuery* q) -> bool {
    auto get = Lookup(req);
    if (!Get(ParseTimeRange(get, now()), &q->range, res)) return false;
    std::optional<int64_t> v;
    if (!Get(ParseInt(get, "pid", 1, INT32_MAX), &v, res)) return false;
    if (v) q->pid = static_cast<uint32_t>(*v);
    if (!Get(ParseText(get, "host"), &q->host, res)) return false;
    if (auto k = get("cpu")) {
      if (*k == "on") q->kind = v1::CPU_KIND_ON_CPU;
      else if (*k == "off") q->kind = v1::CPU_KIND_OFF_CPU;
      else return Reply(res, 400, {{"error", "parameter 'cpu' must be on or off"}}), false;
    }
    return true;
  };

  srv.Get("/api/profile/flame", [store, parse_profile](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "pid", "host", "cpu"}, res)) return;
    ProfileQuery q;
    if (!parse_profile(req, res, &q)) return;
    std::vector<StackValue> stacks;
    if (!Get(store->Stacks(q), &stacks, res)) return;
    Reply(res, 200, {{"stacks", stacks.size()}, {"tree", FlameTree(stacks)}});
  });

  // Differential flame graph: range A (before) against range B (after).
  srv.Get("/api/profile/diff", [store, now](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"a_from", "a_to", "b_from", "b_to", "pid", "host", "cpu"}, res)) return;
    ProfileQuery a, b;
    for (auto [prefix, q] : {std::pair<const char*, ProfileQuery*>{"a_", &a}, {"b_", &b}}) {
      std::string p = prefix;
      auto get = [&req, p](const std::string& name) -> std::optional<std::string> {
        std::string key = (name == "from" || name == "to") ? p + name : name;
        if (!req.has_param(key.c_str())) return std::nullopt;
        return req.get_param_value(key.c_str());
      };
      if (!get("from") || !get("to"))
        return Reply(res, 400, {{"error", "a_from, a_to, b_from and b_to are required"}});
      if (!Get(ParseTimeRange(get, now()), &q->range, res)) return;
      std::optional<int64_t> v;
      if (!Get(ParseInt(get, "pid", 1, INT32_MAX), &v, res)) return;
      if (v) q->pid = static_cast<uint32_t>(*v);
      if (!Get(ParseText(get, "host"), &q->host, res)) return;
      if (auto k = get("cpu")) {
        if (*k != "on" && *k != "off") return Reply(res, 400, {{"error", "parameter 'cpu' must be on or off"}});
        q->kind = *k == "on" ? v1::CPU_KIND_ON_CPU : v1::CPU_KIND_OFF_CPU;
      }
    }
    std::vector<StackValue> sa, sb;
    if (!Get(store->Stacks(a), &sa, res)) return;
    if (!Get(store->Stacks(b), &sb, res)) return;
    Reply(res, 200, {{"tree", FlameDiff(sa, sb)}});
  });

  srv.Get("/api/processes", [store](const httplib::Request&, httplib::Response& res) {
    std::vector<ProcessRow> rows;
    if (!Get(store->Processes(), &rows, res)) return;
    json out = json::array();
    for (const auto& r : rows) {
      out.push_back({{"host", r.host}, {"pid", r.info.pid()}, {"comm", r.info.comm()},
                     {"cmdline", r.info.cmdline()}, {"container_id", r.info.container_id()},
                     {"service", r.info.service_name()},
                     {"last_seen_ms", static_cast<double>(r.last_seen_ns) / 1e6}});
    }
    Reply(res, 200, {{"processes", out}});
  });

  // Service map: services and the calls between them over the range.
  srv.Get("/api/map", [store, now, self_listeners](const httplib::Request& req, httplib::Response& res) {
    if (!OnlyKnown(req, {"from", "to", "last", "limit", "include_self"}, res)) return;
    auto get = Lookup(req);
    RequestLogQuery q;
    if (!Get(ParseTimeRange(get, now()), &q.range, res)) return;
    std::optional<int64_t> v;
    if (!Get(ParseInt(get, "limit", 1, 1'000'000), &v, res)) return;
    if (!ParseIncludeSelf(req, &q.self.include, res)) return;
    q.self.listeners = self_listeners;
    q.limit = v ? static_cast<int>(*v) : 50'000;  // spans read, newest first
    std::vector<StoredSpan> spans;
    if (!Get(store->RequestLog(q), &spans, res)) return;  // Sonde's own left out unless included
    const size_t spans_read = spans.size();
    const ServiceMap map = BuildServiceMap(spans);
    const uint64_t end = std::min(q.range.to_ns, now());
    const double seconds = std::max(1.0, static_cast<double>(end - std::min(end, q.range.from_ns)) / 1e9);
    json nodes = json::array(), edges = json::array();
    for (const auto& n : map.nodes) {
      nodes.push_back({{"id", n.id}, {"kind", n.kind}, {"served", n.served}, {"errors", n.errors}});
    }
    for (const auto& e : map.edges) {
      edges.push_back({{"source", e.source}, {"target", e.target}, {"protocol", e.protocol}, {"count", e.count},
                       {"errors", e.errors}, {"rate", static_cast<double>(e.count) / seconds},
                       {"error_rate", e.count ? static_cast<double>(e.errors) / static_cast<double>(e.count) : 0.0},
                       {"p50_ms", e.p50_ms}, {"p99_ms", e.p99_ms}, {"trace_ids", e.trace_ids}});
    }
    Reply(res, 200, {{"nodes", nodes}, {"edges", edges}, {"range_s", seconds}, {"spans_read", spans_read},
                     {"truncated", spans_read >= static_cast<size_t>(q.limit)}});
  });

  srv.Get(R"(/api/.*)", [](const httplib::Request& req, httplib::Response& res) {
    Reply(res, 404, {{"error", absl::StrCat("no such API: ", req.path)}});
  });

  // ----- UI ------------------------------------------------------------
  std::string ui_dir = options_.ui_dir;
  srv.Get(R"(/(.*))", [ui_dir](const httplib::Request& req, httplib::Response& res) {
    std::string path = req.matches[1];
    if (path.empty()) path = "index.html";
    if (path.find("..") != std::string::npos) {
      res.status = 400;
      return;
    }
    if (!ui_dir.empty()) {
      std::ifstream f(ui_dir + "/" + path, std::ios::binary);
      if (!f) {
        res.status = 404;
        res.set_content("not found", "text/plain");
        return;
      }
      std::stringstream ss;
      ss << f.rdbuf();
      res.set_content(ss.str(), UiContentType(path));
      return;
    }
    const UiAsset* a = FindUiAsset(path);
    if (!a) {
      res.status = 404;
      res.set_content(UiAssetCount() == 0 ? "UI assets were not built (npm unavailable at build time)"
                                          : "not found",
                      "text/plain");
      return;
    }
    res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
  });
  server.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                           {"Content-Security-Policy",
                            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"}});
}

}  // namespace sonde::server
