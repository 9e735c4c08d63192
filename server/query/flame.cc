#include "server/query/flame.h"

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace sonde::server {
namespace {

struct Node {
  double value = 0;
  double before = 0;
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
};

void Add(Node& root, std::string_view stack, double v, bool before) {
  Node* n = &root;
  (before ? n->before : n->value) += v;
  size_t pos = 0;
  while (pos <= stack.size()) {
    size_t end = stack.find(';', pos);
    if (end == std::string_view::npos) end = stack.size();
    std::string_view frame = stack.substr(pos, end - pos);
    if (!frame.empty()) {
      auto it = n->children.find(frame);
      if (it == n->children.end())
        it = n->children.emplace(std::string(frame), std::make_unique<Node>()).first;
      n = it->second.get();
      (before ? n->before : n->value) += v;
    }
    pos = end + 1;
  }
}

nlohmann::json ToJson(const std::string& name, const Node& n, bool diff, double scale) {
  nlohmann::json j;
  j["name"] = name;
  j["value"] = n.value;
  if (diff) j["delta"] = n.value - n.before * scale;
  auto& kids = j["children"] = nlohmann::json::array();
  for (const auto& [k, c] : n.children) kids.push_back(ToJson(k, *c, diff, scale));
  return j;
}

}  // namespace

nlohmann::json FlameTree(const std::vector<StackValue>& stacks) {
  Node root;
  for (const auto& s : stacks) Add(root, s.stack, static_cast<double>(s.value), false);
  return ToJson("all", root, false, 1);
}

nlohmann::json FlameDiff(const std::vector<StackValue>& before, const std::vector<StackValue>& after) {
  Node root;
  for (const auto& s : after) Add(root, s.stack, static_cast<double>(s.value), false);
  for (const auto& s : before) Add(root, s.stack, static_cast<double>(s.value), true);
  const double scale = root.before > 0 ? root.value / root.before : 1;
  return ToJson("all", root, true, scale);
}

}  // namespace sonde::server
