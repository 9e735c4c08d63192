#pragma once
// Small text files (/proc, /etc): one line, read whole each time.
#include <string>

namespace sonde::core {

// The first line of `path` without its newline; empty when it cannot be read.
std::string ReadFirstLine(const std::string& path);

}  // namespace sonde::core
