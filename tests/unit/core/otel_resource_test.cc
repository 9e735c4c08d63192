// OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME parsing: the SDKs' format
// (comma-separated key=value, percent-encoded values), clear errors naming
// the variable, service.name set aside (not applied to observed processes).
#include "agent/core/otel_resource.h"

#include <gtest/gtest.h>

namespace sonde::core {
namespace {

using KV = ResourceAttributes;

TEST(OtelResource, ParsesTrimsAndPercentDecodes) {
  auto r = ParseResourceAttributes(" deployment.environment.name = prod , team=edge%2Cgw,note=a%20b%3Dc ");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, (KV{{"deployment.environment.name", "prod"}, {"team", "edge,gw"}, {"note", "a b=c"}}));
}

TEST(OtelResource, EmptyValueAndLaterDuplicateWins) {
  auto r = ParseResourceAttributes("a=,b=1,a=2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (KV{{"a", "2"}, {"b", "1"}}));
  auto empty = ParseResourceAttributes("  ");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(OtelResource, MalformedEntriesAreErrors) {
  for (const char* bad : {"novalue", "a=1,,b=2", "=x", "a=%zz", "a=%4", "a=1,b"}) {
    EXPECT_FALSE(ParseResourceAttributes(bad).ok()) << bad;
  }
  auto env = OtelResourceFromEnv("k8s.cluster.name", nullptr);
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("OTEL_RESOURCE_ATTRIBUTES"), std::string_view::npos);
}

TEST(OtelResource, ServiceNameIsSetAsideNotApplied) {
  auto r = OtelResourceFromEnv("service.name=checkout,k8s.cluster.name=eu-1", nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->attributes, (KV{{"k8s.cluster.name", "eu-1"}}));
  EXPECT_EQ(r->ignored_service_name, "checkout");
  // OTEL_SERVICE_NAME takes precedence, as in the SDKs.
  auto both = OtelResourceFromEnv("service.name=checkout", "sonde-agent-eu");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->ignored_service_name, "sonde-agent-eu");
  EXPECT_TRUE(both->attributes.empty());
  auto none = OtelResourceFromEnv(nullptr, nullptr);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->attributes.empty());
  EXPECT_TRUE(none->ignored_service_name.empty());
}

}  // namespace
}  // namespace sonde::core
