#pragma once
// Replaces the values of sensitive headers before a record leaves the
// tracker, so no later stage (printer, exporter, server) ever sees them.
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/record.h"
#include "agent/protocols/semantics.h"

namespace sonde::trace {

inline constexpr std::string_view kRedacted = "[REDACTED]";

// Authorization, Proxy-Authorization, Cookie, Set-Cookie, apikey, X-API-Key.
std::vector<std::string> DefaultSensitiveHeaders();
// Query-string parameters whose values are credentials: apikey, api_key,
// token, access_token, refresh_token, id_token, password, passwd, secret,
// client_secret, signature, sig, auth, session, sessionid, x-amz-signature...
std::vector<std::string> DefaultSensitiveQueryParams();

class Redactor {
 public:
  explicit Redactor(std::vector<std::string> names = DefaultSensitiveHeaders(),
                    std::vector<std::string> query_params = DefaultSensitiveQueryParams());
  bool IsSensitive(std::string_view name) const;  // case-insensitive
  bool IsSensitiveQueryParam(std::string_view name) const;  // case-insensitive
  // Replaces the values of sensitive parameters in a query string ("a=1&token=x").
  void ScrubQuery(std::string& query) const;
  // The same inside a URL or request target: only what follows '?' changes.
  void ScrubUrl(std::string& url) const;
  void Apply(protocols::HeaderList& headers) const;
  void Apply(protocols::L7Record& record) const;
  // A finished span's headers and its semconv header attributes
  // (http.request.header.<name>, http.response.header.<name>): spans that
  // were never records (OTLP app spans) pass the same redaction.
  void Apply(std::vector<protocols::Attribute>& attributes, protocols::HeaderList& request_headers,
             protocols::HeaderList& response_headers) const;

 private:
  std::vector<std::string> names_;  // lowercase
  std::vector<std::string> query_params_;  // lowercase
};

}  // namespace sonde::trace
