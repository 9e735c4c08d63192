#include "agent/core/text_file.h"

#include <fstream>

namespace sonde::core {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  return line;
}

}  // namespace sonde::core
