#pragma once
// Environment overrides of the agent's YAML configuration, for containers and
// systemd drop-ins: SONDE_<SECTION>_<KEY> sets <section>.<key> and
// SONDE_<KEY> a top-level key (SONDE_CAPTURE_PAYLOAD_BYTES=8192 is
// capture.payload_bytes: 8192, SONDE_NODE_NAME=n1 is node_name: n1). Values
// are YAML scalars or flow sequences ("[22, 80]"); an empty value is the
// empty string. Precedence: defaults < file < environment < flags.
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"

namespace sonde::core {

// One applied override, so errors can say where a value came from.
struct EnvOverride {
  std::string variable;  // SONDE_CAPTURE_PAYLOAD_BYTES
  std::string key;       // capture.payload_bytes
};

// Sections and top-level keys of the agent's configuration (the names the
// environment maps onto; the loaders check the keys inside sections).
const std::vector<std::string>& ConfigSections();
const std::vector<std::string>& TopLevelConfigKeys();

// Applies every SONDE_* variable of `environ` (NAME=value strings) that names
// a section or top-level key onto `root` (a map, or null for no file).
// SONDE_* variables that name no section or key are not configuration and
// are left alone (e.g. SONDE_HPACK_BACKEND); a section's unknown key is
// rejected later by that section's loader, naming the key.
absl::StatusOr<std::vector<EnvOverride>> ApplyEnvironment(YAML::Node& root, const std::vector<std::string>& environ);

// This process's environment as NAME=value strings.
std::vector<std::string> ProcessEnvironment();

// The environment variable that sets `key` ("capture.payload_bytes" ->
// "SONDE_CAPTURE_PAYLOAD_BYTES").
std::string EnvVariableFor(const std::string& key);

}  // namespace sonde::core
