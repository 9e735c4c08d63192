// libFuzzer target: the JSON API's parameter parsers (durations, time
// ranges, integers, attribute filters) on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "server/api/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)sonde::server::ParseDuration(text);
  (void)sonde::server::ParseAttributeFilter(text);
  // The same text as each parameter of a time range, split at the first '|'.
  const size_t bar = text.find('|');
  const std::string a = text.substr(0, bar);
  const std::string b = bar == std::string::npos ? "" : text.substr(bar + 1);
  sonde::server::ParamLookup get = [&](const std::string& key) -> std::optional<std::string> {
    return key == "to" ? b : a;
  };
  (void)sonde::server::ParseTimeRange(get, 1'700'000'000'000'000'000ull);
  (void)sonde::server::ParseInt(get, "limit", -5, 5000);
  (void)sonde::server::ParseText(get, "service");
  (void)sonde::server::ParseSource(get);
  (void)sonde::server::ParseKind(get);
  return 0;
}
