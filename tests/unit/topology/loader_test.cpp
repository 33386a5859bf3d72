// Thread: the test's. Unit tests for the loader (topology/loader.cpp, loader_checks.cpp):
// loading the example file, and every validation error with its line. The catalog, endpoint
// syntax and shard maps have their own tests beside this one.
#include "tests/unit/topology/topology_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace vartalap::topology {
namespace {

using namespace test;

// ---------------------------------------------------------------------------------------
// The example file.

TEST(TopologyLocal, LoadsTheOneProcessExample) {
    const LoadResult result = load_file(VARTALAP_SOURCE_DIR "/topology/local.toml");
    ASSERT_TRUE(result.errors.empty()) << all_errors(result);
    ASSERT_TRUE(result.topology);
    const Topology& topology = *result.topology;
    EXPECT_EQ(topology.name, "local");
    EXPECT_EQ(topology.data_dir, "./data");
    EXPECT_EQ(topology.log_level, "info");
    EXPECT_EQ(topology.secret, "");
    // Every daemon kind the product has runs in the one-process topology.
    std::set<std::string> kinds;
    for (const auto& daemon : topology.daemons) kinds.insert(daemon.kind);
    for (const char* kind : {"ws-gateway", "rest-gateway", "message-router", "session", "profile", "persistence"})
        EXPECT_TRUE(kinds.count(kind)) << kind;
    EXPECT_EQ(topology.hosts(), std::vector<std::string>{"localhost"});

    const DaemonSpec* ws = topology.find("ws-1");
    ASSERT_NE(ws, nullptr);
    EXPECT_EQ(ws->kind, "ws-gateway");
    EXPECT_EQ(ws->host, "localhost");
    EXPECT_EQ(ws->endpoint("listen"), "127.0.0.1:8080");
    EXPECT_EQ(ws->endpoint("router"), "inproc://ws-1");
    EXPECT_EQ(ws->endpoint("pull"), "");
    EXPECT_EQ(ws->option_int("max_frame_bytes", 65536), 65536);

    EXPECT_EQ(topology.find("rest-1")->endpoint("listen"), "127.0.0.1:8081");
    EXPECT_EQ(topology.find("router-1")->endpoint("pull"), "inproc://router-1");
    EXPECT_EQ(topology.find("profile-1")->endpoint("router"), "inproc://profile-1");

    // The only session instance owns every slot.
    const DaemonSpec* session = topology.find("session-1");
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(session->endpoint("pull"), "inproc://session-1");
    ASSERT_EQ(session->slots.size(), 1u);
    EXPECT_EQ(session->slots[0].first, 0u);
    EXPECT_EQ(session->slots[0].last, kSlotCount - 1);

    EXPECT_EQ(topology.of_kind("session").size(), 1u);
    EXPECT_EQ(topology.of_kind("group-router-that-does-not-exist").size(), 0u);
    EXPECT_EQ(topology.find("nope"), nullptr);
}

TEST(TopologyLoad, MissingFileIsADiagnostic) {
    const LoadResult result = load_file("/nonexistent/topology.toml");
    EXPECT_FALSE(result.topology);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].line, 0);
    EXPECT_NE(result.errors[0].str().find("/nonexistent/topology.toml: cannot open"),
              std::string::npos);
}

TEST(TopologyLoad, SystemSettingsAndHosts) {
    const LoadResult result = load(R"toml([system]
name = "prod"
data_dir = "/var/lib/vartalap"
log_level = "debug"
secret = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
insecure_tcp = true             # tcp:// below without CURVE keys (keys_test.cpp has them)
[[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "edge-a"
listen = "0.0.0.0:443"
router = "tcp://10.0.0.5:6000"
metrics = "127.0.0.1:9100"
control = "ipc:///run/vartalap/ws-1.control"
)toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    const Topology& topology = *result.topology;
    EXPECT_EQ(topology.file, "t.toml");
    EXPECT_EQ(topology.name, "prod");
    EXPECT_EQ(topology.data_dir, "/var/lib/vartalap");
    EXPECT_EQ(topology.log_level, "debug");
    EXPECT_EQ(topology.secret.substr(0, 4), "hex:");
    const DaemonSpec* ws = topology.find("ws-1");
    EXPECT_EQ(ws->host, "edge-a");
    EXPECT_EQ(ws->line, 7);
    EXPECT_EQ(ws->endpoint("metrics"), "127.0.0.1:9100");
    EXPECT_EQ(ws->endpoint("control"), "ipc:///run/vartalap/ws-1.control");
    EXPECT_EQ(topology.hosts(), (std::vector<std::string>{"edge-a", "localhost"}));
}

// ---------------------------------------------------------------------------------------
// Syntax and keys.

TEST(TopologyErrors, TomlSyntaxErrorHasItsLine) {
    const LoadResult result = load_string("[system]\nname = \"x\"\nlog_level = \n", "t.toml");
    EXPECT_FALSE(result.topology);
    ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
    EXPECT_TRUE(has_error(result, 3, {"TOML syntax error"}));
    EXPECT_EQ(result.errors[0].str().rfind("t.toml:3: TOML syntax error", 0), 0u);
}

TEST(TopologyErrors, UnknownTopLevelKey) {
    const LoadResult result = load(R"toml(name = "x"
[daemons]
kind = "session"
)toml");
    EXPECT_TRUE(has_error(result, 1, {"unknown top-level key 'name'"}));
    EXPECT_TRUE(has_error(result, 2, {"unknown top-level key 'daemons'", "did you mean 'daemon'"}));
}

TEST(TopologyErrors, DaemonMustBeAnArrayOfTables) {
    const LoadResult result = load_string("[daemon]\nkind = \"session\"\n", "t.toml");
    EXPECT_TRUE(has_error(result, 1, {"'daemon' must be an array of tables", "[[daemon]]"}));
    // An empty list is just "no daemons yet".
    const LoadResult empty = load_string("daemon = []\n", "t.toml");
    EXPECT_EQ(empty.errors.size(), 4u) << all_errors(empty);
    EXPECT_TRUE(has_error(empty, 0, {"no session"}));
}

TEST(TopologyErrors, UnknownKeysInSystem) {
    const LoadResult result = load(R"toml([system]
data-dir = "./x"
log_level = "verbose"
)toml");
    EXPECT_TRUE(has_error(result, 2, {"unknown key 'data-dir' in [system]", "did you mean 'data_dir'"}));
    EXPECT_TRUE(has_error(result, 3, {"log_level 'verbose'"}));
}

TEST(TopologyErrors, ShortSecretIsRefusedWithoutEchoingIt) {
    const LoadResult result = load(R"toml([system]
secret = "hunter2"

[[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:0"
router = "tcp://127.0.0.1:*"
)toml");
    EXPECT_TRUE(has_error(result, 2, {"system.secret must be at least 32 bytes"}));
    EXPECT_EQ(all_errors(result).find("hunter2"), std::string::npos);

    const LoadResult bad_hex = load("[system]\nsecret = \"hex:zz\"\n");
    EXPECT_TRUE(has_error(bad_hex, 2, {"hex digits"}));
}

TEST(TopologyErrors, UnknownDaemonKeyNamesKeyAndDaemon) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:8080"
rooter = "inproc://ws-1"
)toml");
    EXPECT_TRUE(has_error(result, 5, {"daemon 'ws-1'", "unknown key 'rooter'", "did you mean 'router'"}));
    // ... and the real key is then missing, reported at the [[daemon]] line.
    EXPECT_TRUE(has_error(result, 1, {"daemon 'ws-1'", "needs 'router'"}));
}

TEST(TopologyErrors, EndpointRoleOfAnotherKind) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:8080"
router = "inproc://ws-1"
pull = "inproc://ws-1-pull"
)toml");
    EXPECT_TRUE(has_error(result, 6, {"daemon 'ws-1'", "has no 'pull' endpoint", "listen, router"}));
}

TEST(TopologyErrors, WrongValueTypes) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = 5
listen = 8080
router = "inproc://ws-1"
options = "fast"
)toml");
    EXPECT_TRUE(has_error(result, 3, {"name must be a string, not an integer"}));
    EXPECT_TRUE(has_error(result, 4, {"listen must be a string"}));
    EXPECT_TRUE(has_error(result, 6, {"options must be a table"}));
}

// ---------------------------------------------------------------------------------------
// Kind and name.

TEST(TopologyErrors, MissingAndUnknownKind) {
    const LoadResult result = load(R"toml([[daemon]]
name = "a"
pull = "inproc://a"

[[daemon]]
kind = "sesion"
name = "b"
)toml");
    EXPECT_TRUE(has_error(result, 1, {"daemon 'a'", "missing kind"}));
    EXPECT_TRUE(has_error(result, 6, {"daemon 'b'", "unknown kind 'sesion'", "did you mean 'session'"}));
}

TEST(TopologyErrors, MissingMalformedAndDuplicateName) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "message-router"
pull = "inproc://a"

[[daemon]]
kind = "message-router"
name = "Router_1"
pull = "inproc://b"

[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://c"

[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://d"
)toml");
    EXPECT_TRUE(has_error(result, 1, {"[[daemon]] #1", "missing name"}));
    EXPECT_TRUE(has_error(result, 7, {"name 'Router_1' must match [a-z0-9][a-z0-9._-]*"}));
    EXPECT_TRUE(has_error(result, 17, {"duplicate daemon name 'router-1'", "line 10"}));
}

TEST(TopologyErrors, MissingRequiredEndpoint) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "session"
name = "session-9"

[[daemon]]
kind = "ws-gateway"
name = "ws-1"
)toml");
    EXPECT_TRUE(has_error(result, 1, {"daemon 'session-9'", "needs 'pull'", "inproc://session-9"}));
    EXPECT_TRUE(has_error(result, 5, {"daemon 'ws-1'", "needs 'listen'"}));
    EXPECT_TRUE(has_error(result, 5, {"daemon 'ws-1'", "needs 'router'"}));
}

// ---------------------------------------------------------------------------------------
// Endpoints.

TEST(TopologyErrors, MalformedZmqEndpoints) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "message-router"
name = "r1"
pull = "tcp://localhost"
[[daemon]]
kind = "message-router"
name = "r2"
pull = "tcp://127.0.0.1:99999"
[[daemon]]
kind = "message-router"
name = "r3"
pull = "udp://127.0.0.1:5"
[[daemon]]
kind = "message-router"
name = "r4"
pull = "inproc://"
[[daemon]]
kind = "message-router"
name = "r5"
pull = "127.0.0.1:5555"
[[daemon]]
kind = "message-router"
name = "r6"
pull = "tcp://*:*"
[[daemon]]
kind = "message-router"
name = "r7"
pull = "ipc:///tmp/r7.sock"
[[daemon]]
kind = "message-router"
name = "r8"
pull = "tcp://[::1]:6000"
)toml");
    EXPECT_TRUE(has_error(result, 4, {"daemon 'r1'", "not a ZeroMQ endpoint", "HOST:PORT"}));
    EXPECT_TRUE(has_error(result, 8, {"daemon 'r2'", "port '99999'"}));
    EXPECT_TRUE(has_error(result, 12, {"daemon 'r3'", "unknown transport 'udp'"}));
    EXPECT_TRUE(has_error(result, 16, {"daemon 'r4'", "inproc:// needs a name"}));
    EXPECT_TRUE(has_error(result, 20, {"daemon 'r5'", "not a ZeroMQ endpoint"}));
    EXPECT_EQ(result.errors.size(), 5u) << all_errors(result);

    const LoadResult spaced = load(R"toml([[daemon]]
kind = "message-router"
name = "r1"
pull = "inproc://r1 "
)toml");
    EXPECT_TRUE(has_error(spaced, 4, {"daemon 'r1'", "whitespace"}));
}

TEST(TopologyErrors, ControlIsAskedByAnotherProcess) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "message-router"
name = "r1"
pull = "inproc://r1"
control = "inproc://r1-control"
[[daemon]]
kind = "message-router"
name = "r2"
pull = "inproc://r2"
control = "ipc:///tmp/vartalap-test/r2.control"
metrics = "127.0.0.1:0"
[[daemon]]
kind = "message-router"
name = "r3"
pull = "inproc://r3"
control = "tcp://127.0.0.1:0"
)toml");
    EXPECT_TRUE(has_error(result, 5, {"daemon 'r1'", "control 'inproc://r1-control'",
                                      "ipc:// or tcp://", "ipc:///run/vartalap/r1.control"}));
    EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
}

TEST(TopologyErrors, MalformedListen) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "rest-gateway"
name = "a"
listen = "127.0.0.1"
router = "inproc://r1"
[[daemon]]
kind = "rest-gateway"
name = "b"
listen = "127.0.0.1:65536"
router = "inproc://r2"
[[daemon]]
kind = "rest-gateway"
name = "c"
listen = "127.0.0.1:http"
router = "inproc://r3"
[[daemon]]
kind = "rest-gateway"
name = "d"
listen = "tcp://127.0.0.1:80"
router = "inproc://r4"
[[daemon]]
kind = "rest-gateway"
name = "e"
listen = "[::1]:0"
router = "inproc://r5"
)toml");
    EXPECT_TRUE(has_error(result, 4, {"daemon 'a'", "listen '127.0.0.1' is malformed"}));
    EXPECT_TRUE(has_error(result, 9, {"daemon 'b'", "port '65536'"}));
    EXPECT_TRUE(has_error(result, 14, {"daemon 'c'", "port 'http'"}));
    EXPECT_TRUE(has_error(result, 19, {"daemon 'd'", "malformed"}));
    EXPECT_EQ(result.errors.size(), 4u) << all_errors(result);
}

TEST(TopologyErrors, SameEndpointBoundTwice) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "0.0.0.0:8080"
router = "inproc://gw"
[[daemon]]
kind = "ws-gateway"
name = "ws-2"
listen = "127.0.0.1:8080"
router = "inproc://gw"
[[daemon]]
kind = "ws-gateway"
name = "ws-3"
listen = "127.0.0.1:9200"
router = "tcp://127.0.0.1:*"
metrics = "127.0.0.1:0"
[[daemon]]
kind = "ws-gateway"
name = "ws-4"
listen = "127.0.0.1:0"
router = "tcp://127.0.0.1:9200"
metrics = "127.0.0.1:0"
)toml");
    // A wildcard address clashes with a specific one on the same port.
    EXPECT_TRUE(has_error(result, 9, {"daemon 'ws-2'", "listen '127.0.0.1:8080'",
                                      "already bound by daemon 'ws-1' (listen) at line 4"}));
    EXPECT_TRUE(has_error(result, 10, {"daemon 'ws-2'", "router 'inproc://gw'",
                                       "already bound by daemon 'ws-1' (router) at line 5"}));
    // A ZeroMQ tcp:// endpoint and an HTTP listener share one port space.
    EXPECT_TRUE(has_error(result, 21, {"daemon 'ws-4'",
                                       "already bound by daemon 'ws-3' (listen) at line 14"}));
    // Kernel-chosen ports (0, *) never clash.
    EXPECT_EQ(result.errors.size(), 3u) << all_errors(result);
}

TEST(TopologyErrors, SameAddressOnDifferentHostsIsFine) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "a"
listen = "0.0.0.0:8080"
router = "tcp://0.0.0.0:6000"
[[daemon]]
kind = "ws-gateway"
name = "ws-2"
host = "b"
listen = "0.0.0.0:8080"
router = "tcp://0.0.0.0:6000"
)toml");
    EXPECT_TRUE(result.errors.empty()) << all_errors(result);
}

TEST(TopologyErrors, InprocNeedsOneHost) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "edge-a"
listen = "0.0.0.0:8080"
router = "inproc://ws-1"
)toml");
    EXPECT_TRUE(has_error(result, 6, {"daemon 'ws-1'", "inproc://", "one process", "2 hosts"}));
    EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
}

TEST(TopologyErrors, IpcCannotCrossHosts) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "edge-a"
listen = "0.0.0.0:8080"
router = "ipc:///run/vartalap/ws-1"
)toml");
    // tail-router and tail-session (host localhost) connect DEALERs to ws-1's router; the
    // first of them is named.
    EXPECT_TRUE(has_error(result, 6, {"daemon 'ws-1'", "'tail-router'", "ipc:// works only within one host"}));
}

// ---------------------------------------------------------------------------------------
// Slots.

TEST(TopologySlots, TwoInstancesSplitTheSlots) {
    const LoadResult result = load_sessions("0-8191", "8192-16383");
    ASSERT_TRUE(result.topology) << all_errors(result);
    ASSERT_EQ(result.topology->find("s1")->slots.size(), 1u);
    EXPECT_EQ(result.topology->find("s1")->slots[0].last, 8191u);
    EXPECT_TRUE(load_sessions(" 0 - 99 , 200-16383 ", "100-199").errors.empty());
    EXPECT_TRUE(load_sessions("0-100,102-16383", "101").errors.empty());
}

TEST(TopologySlots, MalformedRanges) {
    EXPECT_TRUE(has_error(load_sessions("0-8191,x", "8192-16383"), 5,
                          {"daemon 's1'", "malformed range 'x'"}));
    EXPECT_TRUE(has_error(load_sessions("0-", "8192-16383"), 5, {"malformed range '0-'"}));
    EXPECT_TRUE(has_error(load_sessions("", "0-16383"), 5, {"slots is empty"}));
    EXPECT_TRUE(has_error(load_sessions("0-8191", "8192-16384"), 10,
                          {"daemon 's2'", "'8192-16384' is outside 0-16383"}));
    EXPECT_TRUE(has_error(load_sessions("8191-0", "8192-16383"), 5, {"ends before it starts"}));
}

TEST(TopologySlots, Overlaps) {
    const LoadResult result = load_sessions("0-8200", "8192-16383");
    EXPECT_TRUE(has_error(result, 10, {"daemon 's2'", "slots 8192-8200 are also owned by 's1'"}));
    EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
    EXPECT_TRUE(has_error(load_sessions("0-10,5-8191", "8192-16383"), 5,
                          {"slots 5-10 are listed twice"}));
}

TEST(TopologySlots, ReportsTheFirstGap) {
    const LoadResult result = load_sessions("0-100,200-8000", "9000-16000");
    ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
    EXPECT_TRUE(has_error(result, 5, {"slots 101-199 of kind session are owned by no instance"}));

    // A hole at the start is blamed on the instance that owns the slots just after it.
    EXPECT_TRUE(has_error(load_sessions("10-8191", "8192-16383"), 5,
                          {"slots 0-9 of kind session"}));
    EXPECT_TRUE(has_error(load_sessions("0-8191", "8192-16382"), 10, {"slots 16383 of kind"}));
}

TEST(TopologySlots, SeveralInstancesNeedSlots) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "session"
name = "s1"
pull = "inproc://s1"
[[daemon]]
kind = "session"
name = "s2"
pull = "inproc://s2"
slots = "0-16383"
)toml", "session");
    EXPECT_TRUE(has_error(result, 1, {"daemon 's1'", "missing slots", "2 session instances"}));
    EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
}

TEST(TopologySlots, OnlyForShardedKinds) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "message-router"
name = "r"
pull = "inproc://r"
slots = "0-16383"
)toml");
    EXPECT_TRUE(has_error(result, 5, {"daemon 'r'", "slots apply only to sharded kinds"}));
}

TEST(TopologySlots, SingleInstanceWithSlotsMustCoverAll) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "session"
name = "s1"
pull = "inproc://s1"
slots = "0-16000"
)toml", "session");
    EXPECT_TRUE(has_error(result, 5, {"slots 16001-16383"}));
}

// ---------------------------------------------------------------------------------------
// Required kinds, and collecting everything.

TEST(TopologyErrors, MissingRequiredKinds) {
    const LoadResult result = load_string("[system]\nname = \"empty\"\n", "t.toml");
    EXPECT_TRUE(has_error(result, 0, {"no message-router"}));
    EXPECT_TRUE(has_error(result, 0, {"no session"}));
    EXPECT_TRUE(has_error(result, 0, {"no profile"}));
    EXPECT_TRUE(has_error(result, 0, {"no ws-gateway or rest-gateway"}));
    EXPECT_EQ(result.errors.size(), 4u) << all_errors(result);

    // Either gateway is enough.
    EXPECT_TRUE(load("", "").errors.empty());
    EXPECT_TRUE(has_error(load("", "rest-gateway"), 0, {"no ws-gateway or rest-gateway"}));
}

TEST(TopologyErrors, CollectsEveryErrorInLineOrder) {
    const LoadResult result = load_string(R"toml([system]
colour = "blue"

[[daemon]]
kind = "message-router"
name = "r"
pul = "inproc://r"

[[daemon]]
kind = "session"
name = "r"
pull = "tcp://x"
)toml", "t.toml");
    EXPECT_FALSE(result.topology);
    std::vector<int> lines;
    for (const auto& error : result.errors) lines.push_back(error.line);
    // colour; pul; router-needs-pull; duplicate name; bad endpoint; then file-wide ones.
    const std::vector<int> expected = {2, 4, 7, 11, 12, 0, 0};
    EXPECT_EQ(lines, expected) << all_errors(result);
}

TEST(TopologyErrors, GroupStoreHasOneOwnerAndItsRoutersShareItsHost) {
    const LoadResult result = load(R"toml([[daemon]]
kind = "group"
name = "group-1"
host = "a"
router = "tcp://10.0.0.1:7001"
[[daemon]]
kind = "group"
name = "group-2"
host = "a"
router = "tcp://10.0.0.1:7002"
[[daemon]]
kind = "group-router"
name = "gr-1"
host = "b"
pull = "tcp://10.0.0.2:7003"
)toml");
    EXPECT_TRUE(has_error(result, 6, {"group-2", "second group daemon"}));
    EXPECT_TRUE(has_error(result, 14, {"gr-1", "cannot read the group store", "same host"}));
    EXPECT_TRUE(has_error(load(R"toml([[daemon]]
kind = "group-router"
name = "gr-1"
pull = "inproc://gr-1"
)toml"), 1, {"gr-1", "needs a group daemon"}));
}

TEST(TopologyLoad, ThreadsDefaultsToOneAndTakesZeroToSixtyFour) {
    const LoadResult defaulted = load("[system]\nname = \"x\"\ninsecure_tcp = true\n");
    ASSERT_TRUE(defaulted.topology) << all_errors(defaulted);
    EXPECT_EQ(defaulted.topology->threads, 1);
    const LoadResult each = load("[system]\nthreads = 0\ninsecure_tcp = true\n");
    ASSERT_TRUE(each.topology) << all_errors(each);
    EXPECT_EQ(each.topology->threads, 0);
    const LoadResult four = load("[system]\nthreads = 4\ninsecure_tcp = true\n");
    ASSERT_TRUE(four.topology) << all_errors(four);
    EXPECT_EQ(four.topology->threads, 4);
}

TEST(TopologyErrors, ThreadsOutOfRangeOrNotAnInteger) {
    for (const char* value : {"-1", "65", "\"2\"", "1.5"}) {
        const LoadResult result = load(std::string("[system]\nthreads = ") + value + "\n");
        EXPECT_TRUE(has_error(result, 2, {"system.threads must be an integer from 0"})) << value;
    }
}

TEST(TopologyLoad, AccessKeyMaxAgeDefaultsToNeverAndIsChecked) {
    const LoadResult defaulted = load("[system]\nname = \"x\"\ninsecure_tcp = true\n");
    ASSERT_TRUE(defaulted.topology) << all_errors(defaulted);
    EXPECT_EQ(defaulted.topology->access_key_max_age_days, 0);
    const LoadResult year = load("[system]\naccess_key_max_age_days = 365\ninsecure_tcp = true\n");
    ASSERT_TRUE(year.topology) << all_errors(year);
    EXPECT_EQ(year.topology->access_key_max_age_days, 365);
    for (const char* value : {"-1", "36501", "\"30\"", "1.5"}) {
        const LoadResult result = load(std::string("[system]\naccess_key_max_age_days = ") + value + "\n");
        EXPECT_TRUE(has_error(result, 2, {"system.access_key_max_age_days must be an integer from 0"}))
            << value;
    }
}


// ---------------------------------------------------------------------------------------
// Identity (issue 12): the development provider logs anyone in as anyone.

std::string gateway_and_profile(const std::string& listen, const std::string& profile_options) {
    return R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = ")toml" + listen + R"toml("
router = "inproc://ws-1"
[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://profile-1"
)toml" + profile_options;
}

TEST(TopologyIdentity, DevelopmentProviderBehindAPublicListenerIsRefused) {
    for (const std::string& listen : std::vector<std::string>{"0.0.0.0:8080", "10.0.0.1:8080", "[::]:8080", "chat.example.org:443"}) {
        const LoadResult result = load(gateway_and_profile(listen, ""), "profile");
        EXPECT_TRUE(has_error(result, 6, {"daemon 'profile-1'", "identity_provider \"development\"",
                                          "daemon 'ws-1'", "non-loopback address '" + listen + "' (line 4)",
                                          "identity_provider = \"firebase\""}))
            << listen;
        EXPECT_EQ(result.errors.size(), 1u) << all_errors(result);
    }
    // Said explicitly: the error points at the options.
    const LoadResult explicit_dev = load(
        gateway_and_profile("0.0.0.0:8080", "[daemon.options]\nidentity_provider = \"development\"\n"),
        "profile");
    EXPECT_TRUE(has_error(explicit_dev, 10, {"identity_provider \"development\""})) << all_errors(explicit_dev);
}

TEST(TopologyIdentity, LoopbackListenersOrARealProviderAreFine) {
    for (const std::string& listen : std::vector<std::string>{"127.0.0.1:8080", "127.0.0.2:0", "localhost:8080", "[::1]:8080"}) {
        const LoadResult result = load(gateway_and_profile(listen, ""), "profile");
        EXPECT_TRUE(result.topology) << listen << ": " << all_errors(result);
    }
    const LoadResult firebase = load(gateway_and_profile(
        "0.0.0.0:8080", "[daemon.options]\nidentity_provider = \"firebase\"\nfirebase_project_id = \"p\"\n"),
        "profile");
    EXPECT_TRUE(firebase.topology) << all_errors(firebase);
    // "127.evil.example" is a host name, not a loopback address.
    EXPECT_FALSE(load(gateway_and_profile("127.evil.example:80", ""), "profile").topology);
}

} // namespace
} // namespace vartalap::topology
