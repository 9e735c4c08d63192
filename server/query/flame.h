#pragma once
// Merges folded stacks ("a;b;c" -> value) into the nested tree d3-flame-graph
// draws ({name, value, children}), and the differential tree of two ranges
// (value = after, delta = after - before scaled to the same total).
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/store/storage.h"

namespace sonde::server {

nlohmann::json FlameTree(const std::vector<StackValue>& stacks);
nlohmann::json FlameDiff(const std::vector<StackValue>& before, const std::vector<StackValue>& after);

}  // namespace sonde::server
