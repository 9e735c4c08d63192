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

class Redactor {
 public:
  explicit Redactor(std::vector<std::string> names = DefaultSensitiveHeaders());
  bool IsSensitive(std::string_view name) const;  // case-insensitive
  void Apply(protocols::HeaderList& headers) const;
  void Apply(protocols::L7Record& record) const;
  // A finished span's headers and its semconv header attributes
  // (http.request.header.<name>, http.response.header.<name>): spans that
  // were never records (OTLP app spans) pass the same redaction.
  void Apply(std::vector<protocols::Attribute>& attributes, protocols::HeaderList& request_headers,
             protocols::HeaderList& response_headers) const;

 private:
  std::vector<std::string> names_;  // lowercase
};

}  // namespace sonde::trace
