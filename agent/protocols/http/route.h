#pragma once
// Route normalisation: path segments that look like identifiers (numbers,
// UUIDs, hex hashes / object ids, long random tokens) become "{id}" so RED
// metrics and span names group by endpoint, not by entity.
#include <string>
#include <string_view>

namespace sonde::protocols::http {

inline constexpr std::string_view kIdPlaceholder = "{id}";

// `path` has no query string. Keeps the leading and trailing slashes.
std::string NormaliseRoute(std::string_view path);
// The same into `out` (replaced; its capacity is reused: no allocation per call).
void NormaliseRouteInto(std::string_view path, std::string& out);

// True when one path segment (no '/') is an identifier.
bool IsIdSegment(std::string_view segment);

}  // namespace sonde::protocols::http
