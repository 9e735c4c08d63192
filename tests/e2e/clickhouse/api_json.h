#pragma once
// GET a sonde-server API path on 127.0.0.1:port as JSON (null unless 200);
// `status` (optional) receives the HTTP status, 0 when nothing answered.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

namespace sonde::testing {

inline nlohmann::json GetJson(int port, const std::string& path, int* status = nullptr) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  auto res = c.Get(path.c_str());
  if (status != nullptr) *status = res ? res->status : 0;
  if (!res || res->status != 200) return nlohmann::json();
  return nlohmann::json::parse(res->body, nullptr, false);
}

}  // namespace sonde::testing
