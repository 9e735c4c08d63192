#pragma once
// The HTTP side of sonde-server: the JSON query API under /api/ and the web
// UI (embedded assets, or files from --ui-dir). Every handler validates its
// parameters first and answers 400 {"error": "..."} on malformed input.
// With a token configured, /api/* answers 401 and UI pages redirect to
// /login until the client presents it (server/api/api_auth.h).
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

#include "server/ingest/ingest_service.h"
#include "server/store/storage.h"

namespace sonde::server {

struct HttpApiOptions {
  std::string ui_dir;  // empty: serve the assets embedded at build time
  std::function<uint64_t()> now_ns;  // injectable clock (tests)
  std::string token;  // non-empty: every route but /api/health and /api/login needs it (api_auth.h)
  // A trace answers with at most this many spans (the earliest), flagged
  // "truncated": assembly links spans pairwise, so this bounds its cost.
  size_t max_trace_spans = 10'000;
  // The server's own listeners (self_traffic.h, SelfListeners): clients'
  // calls to them are Sonde's own traffic, hidden unless include_self=1.
  std::vector<std::pair<std::string, uint32_t>> self_listeners;
};

class HttpApi {
 public:
  HttpApi(Storage* storage, const IngestCounters* counters, HttpApiOptions options);
  void Register(httplib::Server& server);

 private:
  Storage* storage_;
  const IngestCounters* counters_;
  HttpApiOptions options_;
};

}  // namespace sonde::server
