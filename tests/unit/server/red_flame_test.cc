#include <gtest/gtest.h>

#include "server/query/flame.h"
#include "server/query/red.h"

namespace sonde::server {
namespace {

TEST(Red, HistogramQuantileInterpolates) {
  // 100 values: 50 in (0,10], 40 in (10,20], 10 in (20,40].
  std::vector<uint64_t> bounds = {10, 20, 40};
  std::vector<uint64_t> counts = {50, 40, 10, 0};
  EXPECT_DOUBLE_EQ(HistogramQuantile(bounds, counts, 0.5), 10.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(bounds, counts, 0.7), 15.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(bounds, counts, 0.95), 30.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(bounds, {0, 0, 0, 5}, 0.99), 40.0);  // overflow
  EXPECT_DOUBLE_EQ(HistogramQuantile(bounds, {0, 0, 0, 0}, 0.5), 0.0);
}

TEST(Red, SeriesFromWindowsMergesHistograms) {
  const uint64_t s = 1'000'000'000;
  std::vector<StoredRedWindow> w(3);
  for (auto& x : w) {
    for (uint64_t b : {1'000'000ull, 10'000'000ull}) x.window.add_bucket_bounds_ns(b);
  }
  w[0].window.set_window_start_unix_ns(100 * s);
  w[0].window.set_requests(10);
  w[0].window.set_errors(1);
  for (uint64_t c : {10, 0, 0}) w[0].window.add_bucket_counts(c);
  w[1].window.set_window_start_unix_ns(105 * s);
  w[1].window.set_requests(10);
  for (uint64_t c : {0, 10, 0}) w[1].window.add_bucket_counts(c);
  w[2].window.set_window_start_unix_ns(112 * s);
  w[2].window.set_requests(4);
  for (uint64_t c : {0, 0, 4}) w[2].window.add_bucket_counts(c);
  auto series = SeriesFromWindows(w, {100 * s, 120 * s}, 10 * s);
  ASSERT_EQ(series.points.size(), 2u);
  EXPECT_EQ(series.points[0].requests, 20u);
  EXPECT_DOUBLE_EQ(series.points[0].rate, 2.0);
  EXPECT_DOUBLE_EQ(series.points[0].error_rate, 0.05);
  EXPECT_DOUBLE_EQ(series.points[0].p50_ns, 1'000'000.0);
  EXPECT_GT(series.points[0].p90_ns, 1'000'000.0);
  EXPECT_DOUBLE_EQ(series.points[1].p99_ns, 10'000'000.0);
}

TEST(Red, SeriesFromSamples) {
  const uint64_t s = 1'000'000'000;
  std::vector<SpanSample> v;
  for (int i = 1; i <= 100; ++i) v.push_back({100 * s + static_cast<uint64_t>(i), static_cast<uint64_t>(i), i > 95});
  auto series = SeriesFromSamples(v, {100 * s, 200 * s}, 60 * s);
  ASSERT_EQ(series.points.size(), 1u);
  EXPECT_EQ(series.points[0].requests, 100u);
  EXPECT_EQ(series.points[0].errors, 5u);
  EXPECT_NEAR(series.points[0].p50_ns, 50, 1);
  EXPECT_NEAR(series.points[0].p99_ns, 99, 1);
}

TEST(Flame, MergesFoldedStacks) {
  auto tree = FlameTree({{"main;a;b", 3}, {"main;a;c", 2}, {"main;d", 5}});
  EXPECT_EQ(tree["name"], "all");
  EXPECT_EQ(tree["value"], 10);
  ASSERT_EQ(tree["children"].size(), 1u);
  const auto& main = tree["children"][0];
  EXPECT_EQ(main["value"], 10);
  ASSERT_EQ(main["children"].size(), 2u);
  EXPECT_EQ(main["children"][0]["name"], "a");
  EXPECT_EQ(main["children"][0]["value"], 5);
}

TEST(Flame, DiffScalesBeforeToAfterTotal) {
  // Before: 10 samples all in a. After: 20 samples, half in b.
  auto tree = FlameDiff({{"m;a", 10}}, {{"m;a", 10}, {"m;b", 10}});
  const auto& m = tree["children"][0];
  EXPECT_EQ(m["value"], 20);
  EXPECT_DOUBLE_EQ(m["children"][0]["delta"].get<double>(), 10 - 20);  // a shrank
  EXPECT_DOUBLE_EQ(m["children"][1]["delta"].get<double>(), 10);       // b is new
}

}  // namespace
}  // namespace sonde::server
