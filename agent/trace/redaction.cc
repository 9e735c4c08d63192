#include "agent/trace/redaction.h"

#include <algorithm>

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

Redactor::Redactor(std::vector<std::string> names) {
  for (auto& n : names) names_.push_back(Lower(n));
}

bool Redactor::IsSensitive(std::string_view name) const {
  for (const auto& n : names_) {
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

void Redactor::Apply(protocols::HeaderList& headers) const {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (IsSensitive(headers[i].name)) headers.SetValue(i, kRedacted);
  }
}

void Redactor::Apply(protocols::L7Record& record) const {
  Apply(record.request.headers);
  Apply(record.response.headers);
}

void Redactor::Apply(std::vector<protocols::Attribute>& attributes, protocols::HeaderList& request_headers,
                     protocols::HeaderList& response_headers) const {
  Apply(request_headers);
  Apply(response_headers);
  for (auto& a : attributes) {
    std::string_view key = a.key;
    for (std::string_view prefix : {std::string_view("http.request.header."), std::string_view("http.response.header.")}) {
      if (key.substr(0, prefix.size()) == prefix && IsSensitive(key.substr(prefix.size()))) {
        a.value = std::string(kRedacted);
      }
    }
  }
}

}  // namespace sonde::trace
