#include "agent/core/config_env.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sonde::core {

const std::vector<std::string>& ConfigSections() {
  static const std::vector<std::string> kSections = {"capture", "server", "metrics", "spans", "limits",
                                                     "network", "otlp",   "profile", "services"};
  return kSections;
}

const std::vector<std::string>& TopLevelConfigKeys() {
  static const std::vector<std::string> kKeys = {"log_level", "node_name"};
  return kKeys;
}

std::string EnvVariableFor(const std::string& key) {
  std::string out = "SONDE_";
  for (char c : key) out.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

absl::StatusOr<std::vector<EnvOverride>> ApplyEnvironment(YAML::Node& root,
                                                          const std::vector<std::string>& environ) {
  std::vector<EnvOverride> applied;
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) return absl::InvalidArgumentError("configuration root is not a mapping");
  // Sorted so that the result (and which error comes first) does not depend
  // on the order of the process environment.
  std::vector<std::string> vars = environ;
  std::sort(vars.begin(), vars.end());
  for (const std::string& entry : vars) {
    if (!absl::StartsWith(entry, "SONDE_")) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    const std::string value = entry.substr(eq + 1);
    const std::string lower = absl::AsciiStrToLower(name.substr(6));  // after SONDE_
    std::string section, key;
    for (const auto& top : TopLevelConfigKeys()) {
      if (lower == top) key = top;
    }
    if (key.empty()) {
      for (const auto& s : ConfigSections()) {
        if (absl::StartsWith(lower, s + "_") && lower.size() > s.size() + 1) {
          section = s;
          key = lower.substr(s.size() + 1);
        }
      }
    }
    if (key.empty()) continue;  // not configuration
    YAML::Node parsed;
    if (value.empty()) {
      parsed = YAML::Node(std::string());
    } else {
      try {
        parsed = YAML::Load(value);
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": not a YAML value: ", e.what()));
      }
      if (parsed.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": a scalar or a [list] is expected, not a mapping"));
      }
    }
    if (section.empty()) {
      root[key] = parsed;
      applied.push_back({name, key});
    } else {
      YAML::Node sec = root[section];
      if (sec && !sec.IsNull() && !sec.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": section '", section, "' is not a mapping"));
      }
      if (!sec || sec.IsNull()) root[section] = YAML::Node(YAML::NodeType::Map);
      root[section][key] = parsed;
      applied.push_back({name, absl::StrCat(section, ".", key)});
    }
  }
  return applied;
}

std::vector<std::string> ProcessEnvironment() {
  std::vector<std::string> out;
  for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

}  // namespace sonde::core
