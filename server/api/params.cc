#include "server/api/params.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "proto/sonde/v1/enum_names.h"

namespace sonde::server {

absl::StatusOr<uint64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return absl::InvalidArgumentError(absl::StrCat("bad duration '", std::string(text), "'"));
  double v = 0;
  auto num = text.substr(0, i);
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size())
    return absl::InvalidArgumentError(absl::StrCat("bad duration '", std::string(text), "'"));
  auto unit = text.substr(i);
  double mult;
  if (unit.empty() || unit == "s") mult = 1e9;
  else if (unit == "ns") mult = 1;
  else if (unit == "us") mult = 1e3;
  else if (unit == "ms") mult = 1e6;
  else if (unit == "m") mult = 60e9;
  else if (unit == "h") mult = 3600e9;
  else if (unit == "d") mult = 86400e9;
  else return absl::InvalidArgumentError(absl::StrCat("bad duration unit in '", std::string(text), "'"));
  const double ns = v * mult;
  if (ns > 1e19) return absl::InvalidArgumentError(absl::StrCat("duration too large '", std::string(text), "'"));
  return static_cast<uint64_t>(ns);
}

namespace {
absl::StatusOr<int64_t> ToInt(const std::string& name, const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' must be an integer"));
  return v;
}
}  // namespace

absl::StatusOr<TimeRange> ParseTimeRange(const ParamLookup& get, uint64_t now_ns,
                                         std::string_view default_last) {
  auto from = get("from");
  auto to = get("to");
  auto last = get("last");
  TimeRange r;
  if (from || to) {
    if (last) return absl::InvalidArgumentError("use either from/to or last, not both");
    if (from) {
      auto v = ToInt("from", *from);
      if (!v.ok()) return v.status();
      if (*v < 0) return absl::InvalidArgumentError("parameter 'from' must be >= 0");
      r.from_ns = static_cast<uint64_t>(*v) * 1000000;
    }
    r.to_ns = now_ns;
    if (to) {
      auto v = ToInt("to", *to);
      if (!v.ok()) return v.status();
      if (*v < 0) return absl::InvalidArgumentError("parameter 'to' must be >= 0");
      r.to_ns = static_cast<uint64_t>(*v) * 1000000;
    }
    if (r.from_ns > r.to_ns) return absl::InvalidArgumentError("'from' is after 'to'");
    return r;
  }
  auto d = ParseDuration(last ? std::string_view(*last) : default_last);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("parameter 'last': ", d.status().message()));
  r.to_ns = now_ns;
  r.from_ns = *d < now_ns ? now_ns - *d : 0;
  return r;
}

absl::StatusOr<std::optional<int64_t>> ParseInt(const ParamLookup& get, const std::string& name,
                                                int64_t min, int64_t max) {
  auto s = get(name);
  if (!s) return std::optional<int64_t>();
  auto v = ToInt(name, *s);
  if (!v.ok()) return v.status();
  if (*v < min || *v > max)
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be between ", min, " and ", max));
  return std::optional<int64_t>(*v);
}

absl::StatusOr<std::optional<int>> ParseSource(const ParamLookup& get) {
  auto s = get("source");
  if (!s) return std::optional<int>();
  auto source = v1::names::NumberOf(v1::names::kSpanSourceLetter, *s);
  if (!source) source = v1::names::NumberOf(v1::names::kSpanSource, *s);
  if (source && *source != v1::SPAN_SOURCE_UNSPECIFIED) return source;
  return absl::InvalidArgumentError("parameter 'source' must be A, S or N");
}

absl::StatusOr<std::optional<int>> ParseKind(const ParamLookup& get) {
  auto s = get("kind");
  if (!s) return std::optional<int>();
  const auto kind = v1::names::NumberOf(v1::names::kSpanKind, *s);
  if (kind && *kind != v1::SPAN_KIND_UNSPECIFIED) return kind;
  return absl::InvalidArgumentError(
      "parameter 'kind' must be server, client, internal, producer or consumer");
}

absl::StatusOr<std::optional<std::string>> ParseText(const ParamLookup& get, const std::string& name,
                                                     size_t max_len) {
  auto s = get(name);
  if (!s || s->empty()) return std::optional<std::string>();
  if (s->size() > max_len)
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' is too long"));
  return s;
}

absl::StatusOr<AttributeFilter> ParseAttributeFilter(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return absl::InvalidArgumentError("parameter 'attr' must look like key=value");
  if (text.size() > 1024) return absl::InvalidArgumentError("parameter 'attr' is too long");
  if (text.find('\n') != std::string_view::npos)
    return absl::InvalidArgumentError("parameter 'attr' must not contain a newline");
  return AttributeFilter{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

}  // namespace sonde::server
