// The ops thread's replies (status, metrics, errors) and the SIGHUP hand-off helpers, without
// sockets: a Board filled by hand and fixed clock values.
#include "common/version.hpp"
#include "daemons/ops_server.hpp"
#include "daemons/reload.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace vartalap {
namespace {

topology::DaemonSpec spec() {
    topology::DaemonSpec s;
    s.kind = "session";
    s.name = "session-1";
    s.host = "core-a";
    return s;
}

TEST(OpsReplyTest, StatusCarriesIdentityHealthUptimeAndCounters) {
    const topology::DaemonSpec self = spec();
    metrics::Board board;
    metrics::Snapshot s;
    s.counter("vartalap_messages_in_total", "h", 12);
    s.gauge("vartalap_connections", "h", 3);
    board.publish(s, 10'500);
    const OpsEntry entry{&self, &board};

    const nlohmann::json status = status_json(entry, 1'000, 11'000, false);
    EXPECT_EQ(status["instance"], "session-1");
    EXPECT_EQ(status["kind"], "session");
    EXPECT_EQ(status["host"], "core-a");
    EXPECT_EQ(status["health"], "ok");
    EXPECT_EQ(status["uptime_seconds"], 10);
    EXPECT_EQ(status["last_publish_age_ms"], 500);
    EXPECT_EQ(status["version"], std::string(version()));
    EXPECT_EQ(status["counters"]["messages_in_total"], 12);
    EXPECT_EQ(status["gauges"]["connections"], 3);
    EXPECT_GT(status["pid"].get<std::int64_t>(), 0);

    // The loop stopped publishing: stalled, and vartalap_up 0 on the metrics port.
    const std::uint64_t late = 10'500 + metrics::kStalledAfterMs + 1;
    EXPECT_EQ(status_json(entry, 1'000, late, false)["health"], "stalled");
    EXPECT_NE(metrics_text(entry, 1'000, late, false).find(
                  R"(vartalap_up{instance="session-1",kind="session",host="core-a"} 0)"),
              std::string::npos);
    EXPECT_EQ(status_json(entry, 1'000, 11'000, true)["health"], "draining");
}

TEST(OpsReplyTest, MetricsTextHasTheProcessMetricsThenTheDaemons) {
    const topology::DaemonSpec self = spec();
    metrics::Board board;
    metrics::Snapshot s;
    s.counter("vartalap_messages_in_total", "h", 12);
    board.publish(s, 2'000);
    const std::string text = metrics_text({&self, &board}, 1'000, 3'000, false);
    const std::string base = R"({instance="session-1",kind="session",host="core-a")";
    EXPECT_NE(text.find("vartalap_up" + base + "} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_build_info" + base + ",version=\"" + std::string(version()) + "\"} 1"),
              std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_uptime_seconds" + base + "} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("vartalap_last_publish_age_seconds" + base + "} 1\n"), std::string::npos);
    EXPECT_NE(text.find("vartalap_messages_in_total" + base + "} 12\n"), std::string::npos);
}

TEST(OpsReplyTest, ControlAnswersStatusMetricsAndNamesTheCommandsOtherwise) {
    const topology::DaemonSpec self = spec();
    metrics::Board board;
    const OpsEntry entry{&self, &board};
    // Never published, just started: starting.
    EXPECT_EQ(nlohmann::json::parse(control_reply("status", entry, 0, 10, false))["health"],
              "starting");
    const auto metrics = nlohmann::json::parse(control_reply("metrics", entry, 0, 10, false));
    EXPECT_NE(metrics["text"].get<std::string>().find("# TYPE vartalap_up gauge"), std::string::npos);
    const auto error = nlohmann::json::parse(control_reply("stat\x01us", entry, 0, 10, false));
    EXPECT_EQ(error["error"], "unknown command \"stat?us\"; commands: status, metrics");
}

TEST(ReloadTest, PendingReloadHandsOverTheLatestEntryOnce) {
    PendingReload pending;
    EXPECT_FALSE(pending.take());
    topology::DaemonSpec first = spec();
    first.options.insert("window", 8);
    topology::DaemonSpec second = spec();
    second.options.insert("window", 16);
    std::thread poster([&] {
        pending.post(first);
        pending.post(second);
    });
    poster.join();
    const auto taken = pending.take();
    ASSERT_TRUE(taken);
    EXPECT_EQ(taken->option_int("window", 0), 16);
    EXPECT_FALSE(pending.take());
}

TEST(ReloadTest, LimitChangesAppliesAndListsOnlyWhatChanged) {
    std::uint64_t timeout = 10000;
    std::size_t window = 64;
    LimitChanges changes;
    changes.apply("ack_timeout_ms", timeout, std::uint64_t{5000});
    changes.apply("window", window, std::size_t{64});
    EXPECT_EQ(timeout, 5000u);
    EXPECT_EQ(window, 64u);
    EXPECT_FALSE(changes.empty());
    LimitChanges none;
    none.apply("window", window, std::size_t{64});
    EXPECT_TRUE(none.empty());
}

} // namespace
} // namespace vartalap
