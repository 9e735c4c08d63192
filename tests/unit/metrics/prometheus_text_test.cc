// The one Prometheus text writer: exact bytes, since dashboards and tests
// scrape these names and labels.
#include "agent/metrics/prometheus_text.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>

namespace sonde::metrics::prometheus {
namespace {

TEST(PrometheusText, HeaderAndSamples) {
  std::string out;
  AppendMetricHeader(out, "sonde_x_total", "counter", "Things seen.");
  AppendSample(out, "sonde_x_total", {}, uint64_t{7});
  AppendSample(out, "sonde_x_total", {{"reason", "budget"}, {"side", "client"}}, uint64_t{18446744073709551615u});
  EXPECT_EQ(out,
            "# HELP sonde_x_total Things seen.\n"
            "# TYPE sonde_x_total counter\n"
            "sonde_x_total 7\n"
            "sonde_x_total{reason=\"budget\",side=\"client\"} 18446744073709551615\n");
}

TEST(PrometheusText, CounterAndGauge) {
  std::string out;
  AppendCounter(out, "a_total", "A.", 42);
  AppendCounter(out, "b_total", "B.", 1, {{"k", "v"}});
  AppendGauge(out, "c", "C.", 12.0);
  EXPECT_EQ(out,
            "# HELP a_total A.\n# TYPE a_total counter\na_total 42\n"
            "# HELP b_total B.\n# TYPE b_total counter\nb_total{k=\"v\"} 1\n"
            "# HELP c C.\n# TYPE c gauge\nc 12\n");
}

TEST(PrometheusText, LabelValuesEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  std::string out;
  AppendSample(out, "m", {{"process", "cu\"rl"}}, uint64_t{1});
  EXPECT_EQ(out, "m{process=\"cu\\\"rl\"} 1\n");
}

TEST(PrometheusText, NumbersReadBackExactly) {
  auto text = [](double v) {
    std::string s;
    AppendNumber(s, v);
    return s;
  };
  EXPECT_EQ(text(0.0015), "0.0015");
  EXPECT_EQ(text(0.00025), "0.00025");
  EXPECT_EQ(text(1.0), "1");
  EXPECT_EQ(text(2.5), "2.5");
  EXPECT_EQ(text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(text(std::nan("")), "NaN");
}

TEST(PrometheusText, HistogramIsCumulativeWithInfSumAndCount) {
  constexpr std::array<double, 2> kBounds = {0.005, 0.25};
  constexpr std::array<uint64_t, 3> kCounts = {1, 0, 2};  // last: +Inf
  std::string out;
  AppendHistogram(out, "h_seconds", {{"route", "/a"}}, kBounds, kCounts, 20.5);
  EXPECT_EQ(out,
            "h_seconds_bucket{route=\"/a\",le=\"0.005\"} 1\n"
            "h_seconds_bucket{route=\"/a\",le=\"0.25\"} 1\n"
            "h_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"
            "h_seconds_sum{route=\"/a\"} 20.5\n"
            "h_seconds_count{route=\"/a\"} 3\n");
  out.clear();
  AppendHistogram(out, "h", {}, kBounds, kCounts, 1);
  EXPECT_EQ(out.substr(0, out.find('\n')), "h_bucket{le=\"0.005\"} 1");
  EXPECT_NE(out.find("\nh_sum 1\nh_count 3\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace sonde::metrics::prometheus
