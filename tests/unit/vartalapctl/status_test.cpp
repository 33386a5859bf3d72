// Thread: the test's. Unit tests for tools/vartalapctl/status.hpp.
#include "tools/vartalapctl/status.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace vartalap::ctl {
namespace {

using nlohmann::json;

DaemonStatus answered(const std::string& instance, const std::string& kind, json reply) {
    DaemonStatus status{instance, kind, "localhost", std::move(reply), "down", ""};
    return status;
}

json reply(const std::string& instance, const std::string& kind, const std::string& health,
           json counters = json::object()) {
    return {{"instance", instance}, {"kind", kind}, {"host", "localhost"}, {"pid", 4242},
            {"version", "0.1.0+gabc1234"}, {"health", health}, {"uptime_seconds", 3725},
            {"last_publish_age_ms", 120}, {"counters", counters}, {"gauges", json::object()}};
}

TEST(StatusFormat, Uptime) {
    EXPECT_EQ(format_uptime(0), "0s");
    EXPECT_EQ(format_uptime(59), "59s");
    EXPECT_EQ(format_uptime(60), "1m00s");
    EXPECT_EQ(format_uptime(725), "12m05s");
    EXPECT_EQ(format_uptime(3725), "1h02m");
    EXPECT_EQ(format_uptime(86400 + 5 * 3600 + 59), "1d05h");
}

TEST(StatusFormat, Count) {
    EXPECT_EQ(format_count(0), "0");
    EXPECT_EQ(format_count(9999), "9999");
    EXPECT_EQ(format_count(12345), "12.3k");
    EXPECT_EQ(format_count(123456), "123k");
    EXPECT_EQ(format_count(4567890), "4.5M");
    EXPECT_EQ(format_count(6.7e9), "6.7G");
    EXPECT_EQ(format_count(-1), "-");
}

TEST(StatusFormat, TableHasOneAlignedRowPerDaemonAndASummary) {
    const std::vector<DaemonStatus> statuses = {
        answered("session-1", "session", reply("session-1", "session", "ok",
                                               {{"messages_in_total", 120}, {"messages_out_total", 118},
                                                {"retries_total", 3}})),
        answered("router-1", "message-router", reply("router-1", "message-router", "ok")),
        {"ws-1", "ws-gateway", "edge-a", std::nullopt, "down", ""},
        {"profile-1", "profile", "localhost", std::nullopt, "unknown", "no control endpoint in the file"},
    };
    const std::string table = status_table(statuses);
    EXPECT_EQ(table,
              "INSTANCE   KIND            HOST       HEALTH   UPTIME  PID   VERSION         IN/OUT\n"
              "session-1  session         localhost  ok       1h02m   4242  0.1.0+gabc1234  120/118\n"
              "router-1   message-router  localhost  ok       1h02m   4242  0.1.0+gabc1234  -\n"
              "ws-1       ws-gateway      edge-a     down     -       -     -               -\n"
              "profile-1  profile         localhost  unknown  -       -     -               -\n"
              "4 daemons: 2 ok, 1 down, 1 unknown\n"
              "profile-1: no control endpoint in the file\n");
}

TEST(StatusFormat, HealthAndExitCode) {
    std::vector<DaemonStatus> statuses = {
        answered("session-1", "session", reply("session-1", "session", "ok")),
        answered("router-1", "message-router", reply("router-1", "message-router", "ok")),
    };
    EXPECT_EQ(status_exit_code(statuses), 0);
    for (const char* health : {"starting", "stalled", "draining"}) {
        statuses[1].reply = reply("router-1", "message-router", health);
        EXPECT_EQ(health_of(statuses[1]), health);
        EXPECT_EQ(status_exit_code(statuses), 1) << health;
    }
    statuses[1].reply.reset();
    statuses[1].missing = "down";
    EXPECT_EQ(health_of(statuses[1]), "down");
    EXPECT_EQ(status_exit_code(statuses), 1);
    statuses[1].missing = "unknown";
    EXPECT_EQ(status_exit_code(statuses), 1);
    EXPECT_EQ(status_exit_code({}), 1);
}

TEST(StatusFormat, JsonArrayKeepsRepliesAndNamesTheMissing) {
    const json session = reply("session-1", "session", "ok");
    const std::vector<DaemonStatus> statuses = {
        answered("session-1", "session", session),
        {"ws-1", "ws-gateway", "edge-a", std::nullopt, "down", ""},
        {"profile-1", "profile", "localhost", std::nullopt, "unknown", "no control endpoint in the file"},
    };
    const json array = status_array(statuses);
    ASSERT_TRUE(array.is_array());
    ASSERT_EQ(array.size(), 3u);
    EXPECT_EQ(array[0], session);
    EXPECT_EQ(array[1], (json{{"instance", "ws-1"}, {"kind", "ws-gateway"}, {"host", "edge-a"},
                              {"health", "down"}}));
    EXPECT_EQ(array[2]["health"], "unknown");
    EXPECT_EQ(array[2]["note"], "no control endpoint in the file");
}

TEST(StatusQuery, UnservedEndpointsAreDownAndMissingOnesUnknownWithinTheTimeout) {
    const auto loaded = topology::load_string(R"toml([system]
insecure_tcp = true
[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://router-1"
control = "ipc:///tmp/vartalap-unit-status-nobody-serves-this.control"
[[daemon]]
kind = "session"
name = "session-1"
pull = "inproc://session-1"
control = "tcp://127.0.0.1:1"
[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://profile-1"
[[daemon]]
kind = "rest-gateway"
name = "rest-1"
listen = "127.0.0.1:0"
router = "inproc://rest-1"
control = "tcp://127.0.0.1:*"
)toml", "t.toml");
    ASSERT_TRUE(loaded.topology) << (loaded.errors.empty() ? "" : loaded.errors[0].str());
    const auto started = std::chrono::steady_clock::now();
    const auto statuses = query_status(*loaded.topology, "", std::chrono::milliseconds(300));
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_GE(took, std::chrono::milliseconds(290));
    EXPECT_LT(took, std::chrono::seconds(2));
    ASSERT_EQ(statuses.size(), 4u);
    EXPECT_EQ(health_of(statuses[0]), "down");
    EXPECT_EQ(health_of(statuses[1]), "down");
    EXPECT_EQ(health_of(statuses[2]), "unknown");
    EXPECT_EQ(statuses[2].note, "no control endpoint in the file");
    EXPECT_EQ(health_of(statuses[3]), "unknown");
    EXPECT_NE(statuses[3].note.find("kernel-chosen port"), std::string::npos) << statuses[3].note;
    EXPECT_EQ(status_exit_code(statuses), 1);
}

} // namespace
} // namespace vartalap::ctl
