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
std::optional<std::string_view> Find(const HeaderList& headers, std::string_view name) {
  for (const HeaderField h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}
}  // namespace

std::optional<std::string_view> L7Record::RequestHeader(std::string_view name) const {
  return Find(request.headers, name);
}
std::optional<std::string_view> L7Record::ResponseHeader(std::string_view name) const {
  return Find(response.headers, name);
}

}  // namespace sonde::protocols
