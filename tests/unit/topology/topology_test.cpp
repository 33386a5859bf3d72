// Thread: the test's. Unit tests for the value types of topology/topology.hpp: diagnostics,
// kind-specific options, and the Topology lookups.
#include "tests/unit/topology/topology_test_support.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace vartalap::topology {
namespace {

using namespace test;

TEST(TopologyLoad, DiagnosticFormat) {
    EXPECT_EQ((Diagnostic{"a.toml", 7, "bad"}).str(), "a.toml:7: bad");
    EXPECT_EQ((Diagnostic{"a.toml", 0, "bad"}).str(), "a.toml: bad");
}

TEST(TopologyOptions, GettersReturnValueFallbackOrThrow) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:0"
router = "inproc://ws-1"
[daemon.options]
max_frame_bytes = 1024
path = "/wss"
compress = true
idle_ping_seconds = "30"
)toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const DaemonSpec& ws = *result.topology->find("ws-1");
    EXPECT_EQ(ws.option_int("max_frame_bytes", 65536), 1024);
    EXPECT_EQ(ws.option_int("write_queue_limit", 256), 256);
    EXPECT_EQ(ws.option_string("path", "/"), "/wss");
    EXPECT_EQ(ws.option_string("other", "x"), "x");
    EXPECT_TRUE(ws.option_bool("compress", false));
    EXPECT_TRUE(ws.option_bool("absent", true));
    try {
        ws.option_int("idle_ping_seconds", 30);
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& error) {
        EXPECT_STREQ(error.what(), "ws-1: option idle_ping_seconds must be an integer");
    }
    EXPECT_THROW(ws.option_string("max_frame_bytes", ""), std::invalid_argument);
    EXPECT_THROW(ws.option_bool("path", false), std::invalid_argument);
}

TEST(TopologyLookups, OfKindFindHostsAndUnknownHost) {
    Topology topology;
    topology.file = "t.toml";
    DaemonSpec a;
    a.kind = "session";
    a.name = "a";
    a.host = "core";
    DaemonSpec b = a;
    b.name = "b";
    DaemonSpec c = a;
    c.kind = "ws-gateway";
    c.name = "c";
    c.host = "edge";
    topology.daemons = {a, c, b};
    const auto sessions = topology.of_kind("session");
    ASSERT_EQ(sessions.size(), 2u);
    EXPECT_EQ(sessions[0]->name, "a");
    EXPECT_EQ(sessions[1]->name, "b");
    EXPECT_EQ(topology.find("c")->kind, "ws-gateway");
    EXPECT_EQ(topology.find("d"), nullptr);
    EXPECT_EQ(topology.hosts(), (std::vector<std::string>{"core", "edge"}));
    EXPECT_EQ(topology.unknown_host_error("edge"), "");
    EXPECT_EQ(topology.unknown_host_error("x"),
              "t.toml: no daemon is placed on host 'x' (hosts: core, edge)");
}

} // namespace
} // namespace vartalap::topology
