#include "agent/protocols/record.h"

#include <algorithm>
#include <cctype>

namespace sonde::protocols {
namespace {
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
const std::string* Find(const std::vector<HeaderField>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}
}  // namespace

const std::string* L7Record::RequestHeader(std::string_view name) const {
  return Find(request.headers, name);
}
const std::string* L7Record::ResponseHeader(std::string_view name) const {
  return Find(response.headers, name);
}

}  // namespace sonde::protocols
