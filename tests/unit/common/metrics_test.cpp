// metrics: histogram buckets, Prometheus text, status JSON, health.
#include "common/metrics.hpp"

#include <gtest/gtest.h>

namespace vartalap::metrics {
namespace {

TEST(HistogramTest, PutsEachObservationInTheFirstBucketAtOrAboveIt) {
    Histogram h;
    h.observe_ms(0);     // <= 0.001
    h.observe_ms(1);     // == 0.001: the bound is inclusive (le)
    h.observe_ms(2);     // <= 0.0025
    h.observe_ms(250);   // == 0.25
    h.observe_ms(61000); // above 60 s: the last, +Inf bucket
    EXPECT_EQ(h.count(), 5u);
    EXPECT_DOUBLE_EQ(h.sum_seconds(), 61.253);
    EXPECT_EQ(h.buckets()[0], 2u);
    EXPECT_EQ(h.buckets()[1], 1u);
    EXPECT_EQ(h.buckets()[7], 1u); // 0.25
    EXPECT_EQ(h.buckets().back(), 1u);
}

TEST(PrometheusTest, RendersHelpTypeLabelsAndCumulativeBuckets) {
    Snapshot s;
    s.counter("vartalap_messages_in_total", "messages accepted", 42);
    s.gauge("vartalap_queue_depth", "waiting", 3, label("queue", "write"));
    s.gauge("vartalap_queue_depth", "waiting", 0.5, label("queue", "other"));
    Histogram h;
    h.observe_ms(3);
    h.observe_ms(40);
    s.histogram("vartalap_delivery_latency_seconds", "latency", h);
    const std::string text = render_prometheus(s, {"session-1", "session", "core-a"});
    const std::string base = R"(instance="session-1",kind="session",host="core-a")";
    EXPECT_NE(text.find("# HELP vartalap_messages_in_total messages accepted\n"
                        "# TYPE vartalap_messages_in_total counter\n"
                        "vartalap_messages_in_total{" + base + "} 42\n"),
              std::string::npos) << text;
    // One HELP/TYPE per family, however many samples.
    EXPECT_EQ(text.find("# TYPE vartalap_queue_depth gauge"),
              text.rfind("# TYPE vartalap_queue_depth gauge"));
    EXPECT_NE(text.find("vartalap_queue_depth{" + base + R"(,queue="write"} 3)" "\n"), std::string::npos);
    EXPECT_NE(text.find("vartalap_queue_depth{" + base + R"(,queue="other"} 0.5)" "\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE vartalap_delivery_latency_seconds histogram"), std::string::npos);
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_bucket{" + base + R"(,le="0.001"} 0)"),
              std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_bucket{" + base + R"(,le="0.005"} 1)"),
              std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_bucket{" + base + R"(,le="0.05"} 2)"),
              std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_bucket{" + base + R"(,le="+Inf"} 2)"),
              std::string::npos);
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_sum{" + base + "} 0.043\n"), std::string::npos);
    EXPECT_NE(text.find("vartalap_delivery_latency_seconds_count{" + base + "} 2\n"), std::string::npos);
}

TEST(PrometheusTest, EscapesLabelValuesAndHelp) {
    EXPECT_EQ(label("v", "a\"b\\c\nd"), R"(v="a\"b\\c\nd")");
    Snapshot s;
    s.gauge("vartalap_x", "line one\nline two \\", 1);
    const std::string text = render_prometheus(s, {"i", "k", "h"});
    EXPECT_NE(text.find(R"(# HELP vartalap_x line one\nline two \\)"), std::string::npos) << text;
}

TEST(SnapshotJsonTest, CountersAndGaugesWithoutPrefixHistogramsLeftOut) {
    Snapshot s;
    s.counter("vartalap_session_stored_total", "h", 7);
    s.gauge("vartalap_queue_depth", "h", 2, label("queue", "in_flight"));
    s.histogram("vartalap_delivery_latency_seconds", "h", Histogram{});
    nlohmann::json counters = nlohmann::json::object(), gauges = nlohmann::json::object();
    add_to_json(s, counters, gauges);
    EXPECT_EQ(counters, (nlohmann::json{{"session_stored_total", 7}}));
    EXPECT_EQ(gauges, (nlohmann::json{{R"(queue_depth{queue="in_flight"})", 2}}));
}

TEST(BoardTest, HoldsTheLastPublishAndItsTime) {
    Board board;
    EXPECT_FALSE(board.last_publish_ms());
    EXPECT_TRUE(board.snapshot().families().empty());
    Snapshot s;
    s.counter("vartalap_a_total", "h", 1);
    board.publish(s, 1234);
    ASSERT_TRUE(board.last_publish_ms());
    EXPECT_EQ(*board.last_publish_ms(), 1234u);
    EXPECT_EQ(board.snapshot().families().size(), 1u);
}

TEST(HealthTest, FromTheHeartbeat) {
    // Never published: starting for the grace period, then stalled.
    EXPECT_EQ(health_of(std::nullopt, 1000, 1000 + kStartingGraceMs - 1, false), Health::starting);
    EXPECT_EQ(health_of(std::nullopt, 1000, 1000 + kStartingGraceMs, false), Health::stalled);
    // Published: ok while recent.
    EXPECT_EQ(health_of(5000, 1000, 5000 + kStalledAfterMs, false), Health::ok);
    EXPECT_EQ(health_of(5000, 1000, 5000 + kStalledAfterMs + 1, false), Health::stalled);
    // Draining wins.
    EXPECT_EQ(health_of(5000, 1000, 5001, true), Health::draining);
    EXPECT_EQ(to_string(Health::stalled), "stalled");
}

} // namespace
} // namespace vartalap::metrics
