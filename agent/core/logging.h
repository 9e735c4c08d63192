#pragma once
#include <string>

namespace sonde::core {
// Configures the default spdlog logger (stderr, level from a name such as
// "info" or "debug"). Returns false for an unknown level name.
bool SetupLogging(const std::string& level);
}  // namespace sonde::core
