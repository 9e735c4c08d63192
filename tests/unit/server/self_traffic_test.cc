// The server's listeners as a captured client span names its server.
#include "server/api/self_traffic.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sonde::server {
namespace {

using Pairs = std::vector<std::pair<std::string, uint32_t>>;

bool Has(const Pairs& p, const std::string& address, uint32_t port) {
  return std::find(p.begin(), p.end(), std::pair{address, port}) != p.end();
}

TEST(SelfListeners, SpecificAddressesAsGiven) {
  EXPECT_EQ(SelfListeners({{"127.0.0.1", 8080}, {"10.1.2.3", 7070}}),
            (Pairs{{"127.0.0.1", 8080}, {"10.1.2.3", 7070}}));
  EXPECT_EQ(SelfListeners({{"[::1]", 8080}}), (Pairs{{"::1", 8080}}));
  EXPECT_EQ(SelfListeners({{"localhost", 8080}}), (Pairs{{"127.0.0.1", 8080}, {"::1", 8080}}));
  EXPECT_EQ(SelfListeners({{"127.0.0.1", 8080}, {"127.0.0.1", 8080}}), (Pairs{{"127.0.0.1", 8080}}));
}

TEST(SelfListeners, AnyAddressIsEachOfThisHostsAddresses) {
  const auto local = LocalAddresses();
  ASSERT_NE(std::find(local.begin(), local.end(), "127.0.0.1"), local.end());  // lo is always up
  for (const char* any : {"0.0.0.0", "::", "", "[::]"}) {
    const Pairs p = SelfListeners({{any, 8080}});
    EXPECT_TRUE(Has(p, "127.0.0.1", 8080)) << any;
    EXPECT_EQ(p.size(), local.size()) << any;
    for (const auto& [address, port] : p) {
      EXPECT_FALSE(address.empty()) << any;  // never "any host": another host's :8080 is not ours
      EXPECT_EQ(port, 8080u);
    }
  }
}

TEST(SelfListeners, PortsOutOfRangeAreSkipped) {
  EXPECT_TRUE(SelfListeners({{"127.0.0.1", 0}, {"127.0.0.1", -1}, {"127.0.0.1", 70000}}).empty());
}

}  // namespace
}  // namespace sonde::server
