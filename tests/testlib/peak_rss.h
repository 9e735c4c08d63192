#pragma once
// Peak resident set of this process (VmHWM), KiB; -1 when /proc says nothing.
// Tests of hostile input print and bound it before and after each input.
#include <cstdlib>
#include <fstream>
#include <string>

namespace sonde::testlib {

inline long PeakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace sonde::testlib
