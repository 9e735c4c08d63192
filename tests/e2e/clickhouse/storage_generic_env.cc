// Runs the storage-generic server tests (tests/unit/server: the JSON API
// over a real store, search by path) on ClickHouse: a private
// clickhouse-server for the test binary, each test's store a fresh database
// in it (testing::TestStoragePath reads SONDE_TEST_STORAGE_URL).
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/e2e/clickhouse/clickhouse_server.h"

namespace sonde::testing {
namespace {

class ClickHouseStorageEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!ClickHouseInstalled()) {
      if (testlib::InCi()) FAIL() << "prerequisite missing in CI: clickhouse-server";
      GTEST_SKIP() << "clickhouse-server not installed";
    }
    std::string error;
    server_ = ClickHouseServer::Start(&error);
    ASSERT_TRUE(server_) << error;
    const std::string url = "clickhouse://127.0.0.1:" + std::to_string(server_->http_port()) + "/";
    setenv("SONDE_TEST_STORAGE_URL", url.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("SONDE_TEST_STORAGE_URL");
    server_.reset();
  }

 private:
  std::unique_ptr<ClickHouseServer> server_;
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new ClickHouseStorageEnvironment);

}  // namespace
}  // namespace sonde::testing
