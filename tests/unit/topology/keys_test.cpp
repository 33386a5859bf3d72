// The hosts' CURVE keys in a topology file ([host.NAME]) and the tcp:// rule: a tcp://
// ZeroMQ endpoint needs keys for every host, or `insecure_tcp = true` (topology/README.md,
// "Internal transport").
#include "topology/topology.hpp"
#include "tests/unit/topology/topology_test_support.hpp"

#include <gtest/gtest.h>

namespace vartalap::topology::test {
namespace {

// Two valid Z85 public keys (from `vartalapctl keys`).
constexpr const char* kKeyA = "b@$eBvND!)sTC+TY=Iali^vGul*cWxdC@j[Y>!11";
constexpr const char* kKeyB = "P1^4>/fF2@(u#Yyg/wmCfi)8MmDIa-fV@F<ZM.$D";

// Two hosts over tcp://, with `extra` (host keys, [system]) appended.
std::string two_hosts(const std::string& extra) {
    return R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
host = "edge"
listen = "127.0.0.1:0"
router = "tcp://10.0.0.1:6001"

[[daemon]]
kind = "message-router"
name = "router-1"
host = "core"
pull = "tcp://10.0.0.2:6101"

[[daemon]]
kind = "session"
name = "session-1"
host = "core"
pull = "tcp://10.0.0.2:6201"

[[daemon]]
kind = "profile"
name = "profile-1"
host = "core"
router = "tcp://10.0.0.2:6301"
)toml" + extra;
}

std::string keys(const std::string& host, const std::string& key) {
    return "\n[host." + host + "]\npublic_key = \"" + key + "\"\nsecret_key_file = \"/etc/vartalap/" +
           host + ".key\"\n";
}

TEST(TopologyKeys, EveryHostWithKeysLoads) {
    const LoadResult result = load_string(two_hosts(keys("edge", kKeyA) + keys("core", kKeyB)), "t.toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    EXPECT_TRUE(result.topology->curve());
    EXPECT_EQ(result.topology->keys_of("edge")->public_key, kKeyA);
    EXPECT_EQ(result.topology->keys_of("core")->secret_key_file, "/etc/vartalap/core.key");
    EXPECT_EQ(result.topology->keys_of("other"), nullptr);
}

TEST(TopologyKeys, TcpWithoutKeysIsRefusedUnlessInsecureTcp) {
    const LoadResult plain = load_string(two_hosts(""), "t.toml");
    EXPECT_FALSE(plain.topology);
    EXPECT_TRUE(has_error(plain, 6, {"ws-1", "tcp://10.0.0.1:6001", "without CURVE keys",
                                     "insecure_tcp = true"}))
        << all_errors(plain);
    EXPECT_EQ(plain.errors.size(), 1u) << all_errors(plain); // one error, not one per endpoint

    const LoadResult insecure = load_string(two_hosts("\n[system]\ninsecure_tcp = true\n"), "t.toml");
    ASSERT_TRUE(insecure.topology) << all_errors(insecure);
    EXPECT_TRUE(insecure.topology->insecure_tcp);
    EXPECT_FALSE(insecure.topology->curve());

    const LoadResult wrong_type = load_string(two_hosts("\n[system]\ninsecure_tcp = \"yes\"\n"), "t.toml");
    EXPECT_TRUE(has_error(wrong_type, 27, {"insecure_tcp must be a boolean"})) << all_errors(wrong_type);
}

TEST(TopologyKeys, InprocAndIpcNeedNoKeys) {
    const LoadResult result = load_string(R"toml([[daemon]]
kind = "ws-gateway"
name = "ws-1"
listen = "127.0.0.1:0"
router = "ipc:///run/vartalap/ws-1"
control = "ipc:///run/vartalap/ws-1.control"

[[daemon]]
kind = "message-router"
name = "router-1"
pull = "inproc://router-1"

[[daemon]]
kind = "session"
name = "session-1"
pull = "ipc:///run/vartalap/session-1"

[[daemon]]
kind = "profile"
name = "profile-1"
router = "inproc://profile-1"
)toml", "t.toml");
    ASSERT_TRUE(result.topology) << all_errors(result);
    EXPECT_FALSE(result.topology->curve());
    EXPECT_FALSE(result.topology->insecure_tcp);
}

TEST(TopologyKeys, KeysOfSomeHostsOnlyAreRefused) {
    const LoadResult result = load_string(two_hosts(keys("edge", kKeyA)), "t.toml");
    EXPECT_TRUE(has_error(result, 0, {"host 'core' has no CURVE keys", "every host needs them"}))
        << all_errors(result);
    // insecure_tcp does not make half the hosts' keys optional.
    const LoadResult insecure =
        load_string(two_hosts("\n[system]\ninsecure_tcp = true\n" + keys("edge", kKeyA)), "t.toml");
    EXPECT_TRUE(has_error(insecure, 0, {"host 'core' has no CURVE keys"})) << all_errors(insecure);
}

TEST(TopologyKeys, MalformedKeysAreRefused) {
    const std::string bad_key = keys("edge", "not-a-key") + keys("core", kKeyB);
    EXPECT_TRUE(has_error(load_string(two_hosts(bad_key), "t.toml"), 27,
                          {"host.edge.public_key", "40 characters of Z85"}));
    // 40 characters, but a group of five above 2^32.
    const std::string overflow = keys("edge", std::string(40, '#')) + keys("core", kKeyB);
    EXPECT_TRUE(has_error(load_string(two_hosts(overflow), "t.toml"), 27, {"Z85"}));

    const std::string missing = "\n[host.edge]\npublic_key = \"" + std::string(kKeyA) + "\"\n" +
                                keys("core", kKeyB);
    EXPECT_TRUE(has_error(load_string(two_hosts(missing), "t.toml"), 26,
                          {"[host.edge]", "missing secret_key_file"}));

    const std::string unknown = keys("edge", kKeyA) + "public = \"x\"\n" + keys("core", kKeyB);
    EXPECT_TRUE(has_error(load_string(two_hosts(unknown), "t.toml"), 29,
                          {"unknown key 'public'", "public_key, secret_key_file"}));
}

TEST(TopologyKeys, KeysOfAnUnplacedHostOrSharedByTwoHostsAreRefused) {
    const LoadResult unplaced =
        load_string(two_hosts(keys("edge", kKeyA) + keys("core", kKeyB) + keys("nowhere", kKeyB)),
                    "t.toml");
    EXPECT_TRUE(has_error(unplaced, 34, {"[host.nowhere]", "no daemon is placed on host 'nowhere'"}))
        << all_errors(unplaced);
    EXPECT_TRUE(has_error(unplaced, 34, {"the same public key as host 'core'"})) << all_errors(unplaced);
}

} // namespace
} // namespace vartalap::topology::test
