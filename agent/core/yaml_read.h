#pragma once
// Typed reads of YAML configuration sections whose errors name the key, for
// the sections that components own (otlp, profile; capture & co. are in
// config.cc).
#include <set>
#include <string>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sonde::core {

// `node` must be a mapping whose keys are all in `allowed`; `where` names it.
inline absl::Status CheckYamlKeys(const YAML::Node& node, const std::string& where,
                                  const std::set<std::string>& allowed) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a mapping"));
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    if (!allowed.contains(key)) return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

// Reads parent[key] into `out` when present; a wrong type names where.key.
template <typename T>
absl::Status ReadYaml(const YAML::Node& parent, const char* key, const std::string& where, T& out) {
  const YAML::Node n = parent[key];
  if (!n) return absl::OkStatus();
  try {
    out = n.as<T>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace sonde::core
