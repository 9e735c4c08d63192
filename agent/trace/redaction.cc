#include "agent/trace/redaction.h"

#include <algorithm>
#include <variant>

namespace sonde::trace {
namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

std::vector<std::string> DefaultSensitiveHeaders() {
  return {"authorization", "proxy-authorization", "cookie", "set-cookie", "apikey", "x-api-key"};
}

std::vector<std::string> DefaultSensitiveQueryParams() {
  return {"apikey",   "api_key",  "api-key",       "key",       "token",          "access_token",
          "refresh_token", "id_token", "auth",    "password",  "passwd",         "pwd",
          "secret",   "client_secret", "signature", "sig",     "session",        "sessionid",
          "x-amz-signature", "x-amz-security-token", "x-goog-signature"};
}

Redactor::Redactor(std::vector<std::string> names, std::vector<std::string> query_params) {
  for (auto& n : names) names_.push_back(Lower(n));
  for (auto& n : query_params) query_params_.push_back(Lower(n));
}

namespace {
bool InList(const std::vector<std::string>& list, std::string_view name) {
  for (const auto& n : list) {
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          // ASCII only: header names are tokens, and std::tolower is a locale call.
          return a == ((b >= 'A' && b <= 'Z') ? static_cast<char>(b + 32) : b);
        })) {
      return true;
    }
  }
  return false;
}
}  // namespace

bool Redactor::IsSensitive(std::string_view name) const { return InList(names_, name); }
bool Redactor::IsSensitiveQueryParam(std::string_view name) const { return InList(query_params_, name); }

void Redactor::ScrubQuery(std::string& query) const {
  if (query.empty() || query_params_.empty()) return;
  std::string out;
  out.reserve(query.size());
  size_t pos = 0;
  bool changed = false;
  while (pos <= query.size()) {
    size_t end = query.find_first_of("&;", pos);
    if (end == std::string::npos) end = query.size();
    std::string_view pair(query.data() + pos, end - pos);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && IsSensitiveQueryParam(pair.substr(0, eq))) {
      out.append(pair.substr(0, eq + 1));
      out.append(kRedacted);
      changed = true;
    } else {
      out.append(pair);
    }
    if (end == query.size()) break;
    out.push_back(query[end]);
    pos = end + 1;
  }
  if (changed) query = std::move(out);
}

void Redactor::ScrubUrl(std::string& url) const {
  const size_t q = url.find('?');
  if (q == std::string::npos) return;
  const size_t fragment = url.find('#', q);
  const size_t length = (fragment == std::string::npos ? url.size() : fragment) - (q + 1);
  std::string query = url.substr(q + 1, length);
  ScrubQuery(query);
  url.replace(q + 1, length, query);
}

void Redactor::Apply(protocols::HeaderList& headers) const {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (IsSensitive(headers[i].name)) headers.SetValue(i, kRedacted);
  }
}

void Redactor::Apply(protocols::L7Record& record) const {
  Apply(record.request.headers);
  Apply(record.response.headers);
  ScrubQuery(record.query);
}

void Redactor::Apply(std::vector<protocols::Attribute>& attributes, protocols::HeaderList& request_headers,
                     protocols::HeaderList& response_headers) const {
  Apply(request_headers);
  Apply(response_headers);
  for (auto& a : attributes) {
    std::string_view key = a.key;
    if (key == "url.query") {
      if (auto* text = std::get_if<std::string>(&a.value)) ScrubQuery(*text);
      continue;
    }
    if (key == "url.full" || key == "http.url" || key == "http.target") {
      if (auto* text = std::get_if<std::string>(&a.value)) ScrubUrl(*text);
      continue;
    }
    for (std::string_view prefix : {std::string_view("http.request.header."), std::string_view("http.response.header.")}) {
      if (key.substr(0, prefix.size()) == prefix && IsSensitive(key.substr(prefix.size()))) {
        a.value = std::string(kRedacted);
      }
    }
  }
}

}  // namespace sonde::trace
