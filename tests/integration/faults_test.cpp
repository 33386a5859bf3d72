// Issue 14, section 4: daemons that are down, with real sockets. The daemons placed on host
// "elsewhere" are never started, so their peers connect to them in vain for the whole test.
// (The kill -9 runs of the multi-process topology are vartalap-chaos, tests/CMakeLists.txt.)
#include "tests/integration/support/system_fixture.hpp"
#include "common/zmq/socket.hpp"
#include "topology/shard_map.hpp"

#include <gtest/gtest.h>

namespace vartalap::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A daemon on a host this test does not run, at an ipc:// endpoint nobody binds (not
// inproc://: ZeroMQ attaches a pipe to an unbound inproc endpoint at once, whatever
// ZMQ_IMMEDIATE says, where a real peer that is down has none).
topology::DaemonSpec absent(const std::filesystem::path& dir, const std::string& kind, const std::string& name,
                            const std::string& role) {
    topology::DaemonSpec spec;
    spec.kind = kind;
    spec.name = name;
    spec.host = "elsewhere";
    spec.endpoints[role] = "ipc://" + (dir / name).string();
    return spec;
}

// A user whose session shard is instance `shard` of the map.
std::string user_on(const topology::ShardMap& shards, std::size_t shard, const std::string& prefix) {
    for (int i = 0;; ++i)
        if (const std::string user = prefix + std::to_string(i); shards.index_for(user) == shard) return user;
}

TEST(FaultsTest, AMessageRouterThatIsDownTakesNoTraffic) {
    // Two routers, one of them down: the gateways push only to the connected one
    // (ZMQ_IMMEDIATE), so every message is acked and delivered; none waits for the other.
    TempDir data;
    RunningSystem system(local_topology(data.path(), [&](topology::Topology& t) {
                             t.daemons.push_back(absent(data.path(), "message-router", "router-down", "pull"));
                         }),
                         "localhost");
    auto alice = system.login("alice"), bob = system.login("bob");
    WsClient alice_ws = system.connect(alice), bob_ws = system.connect(bob);
    for (int i = 0; i < 20; ++i)
        ASSERT_TRUE(alice_ws.send_text(text_message("m" + std::to_string(i), bob.user, "hi").dump()));
    for (int i = 0; i < 20; ++i) {
        const std::string id = "m" + std::to_string(i);
        ASSERT_TRUE(wait_for_server_ack(alice_ws, id)) << id;
        ASSERT_TRUE(wait_for_id(bob_ws, id)) << id;
    }
}

TEST(FaultsTest, MessagesPushedToARouterThatSwallowsThemAreNotLost) {
    // Two routers; the second is the test's PULL, which takes messages and never passes
    // them on: a router whose host lost power while its connections stay up. The gateway
    // round-robins about half of the messages into it. A client that never resends (ack
    // off, as the app) still has every message delivered: the gateway pushes each one
    // without a server_ack again after resend_after_ms, until the live router takes it.
    TempDir data;
    const std::string hole_endpoint = "ipc://" + (data.path() / "router-hole").string();
    zmq::context_t context{1};
    zmq::socket_t hole = make_socket(context, zmq::socket_type::pull);
    hole.bind(hole_endpoint);
    RunningSystem system(local_topology(data.path(), [&](topology::Topology& t) {
                             for (auto& daemon : t.daemons)
                                 if (daemon.kind == "ws-gateway")
                                     daemon.options.insert_or_assign("resend_after_ms", 300);
                             auto router = absent(data.path(), "message-router", "router-hole", "pull");
                             t.daemons.push_back(router);
                         }),
                         "localhost");
    auto alice = system.login("alice"), bob = system.login("bob");
    WsClient alice_ws = system.connect(alice, /*ack=*/false), bob_ws = system.connect(bob);
    constexpr int kMessages = 20;
    for (int i = 0; i < kMessages; ++i)
        ASSERT_TRUE(alice_ws.send_text(text_message("m" + std::to_string(i), bob.user, "hi").dump()));
    for (int i = 0; i < kMessages; ++i)
        EXPECT_TRUE(wait_for_id(bob_ws, "m" + std::to_string(i))) << "m" << i;
    // The hole did take some of them (else this test tested nothing).
    int swallowed = 0;
    for (zmq::message_t part; hole.recv(part, zmq::recv_flags::dontwait);)
        if (!part.more()) ++swallowed;
    EXPECT_GT(swallowed, 0);
}

TEST(FaultsTest, MessagesForAShardThatIsDownAreRefusedInBoundedTimeAsRetryable) {
    // Two session shards, the second down. The router holds its messages for hold_timeout_ms,
    // then refuses them to the sender: an error frame naming the message, "server busy,
    // retry". Messages for the first shard flow meanwhile.
    TempDir data;
    auto topology = local_topology(data.path(), [&](topology::Topology& t) {
        for (auto& daemon : t.daemons) {
            if (daemon.kind == "session") daemon.slots = {{0, 8191}};
            if (daemon.kind == "message-router") daemon.options.insert_or_assign("hold_timeout_ms", 400);
        }
        auto down = absent(data.path(), "session", "session-down", "pull");
        down.slots = {{8192, 16383}};
        t.daemons.push_back(down);
    });
    const topology::ShardMap shards(topology, "session");
    const std::size_t up = shards.instances()[0]->name == "session-down" ? 1 : 0;
    RunningSystem system(topology, "localhost");
    auto alice = system.login(user_on(shards, up, "alice-"));
    auto bob = system.login(user_on(shards, up, "bob-"));
    const std::string carol = user_on(shards, 1 - up, "carol-"); // on the shard that is down
    WsClient alice_ws = system.connect(alice), bob_ws = system.connect(bob);

    // The gateway's PUSH to the router first: just after start it may not be connected yet,
    // and the gateway itself then refuses at once with the same error (not what is tested).
    ASSERT_TRUE(send_until_server_ack(alice_ws, text_message("first", bob.user, "hi").dump(), "first", 10s));
    const auto sent = std::chrono::steady_clock::now();
    ASSERT_TRUE(alice_ws.send_text(text_message("to-carol", carol, "hi").dump()));
    ASSERT_TRUE(alice_ws.send_text(text_message("to-bob", bob.user, "hi").dump()));
    EXPECT_TRUE(wait_for_server_ack(alice_ws, "to-bob"));
    EXPECT_TRUE(wait_for_id(bob_ws, "to-bob"));
    const auto error = alice_ws.read_json_matching(
        [](const json& m) { return m.value("id", "") == "to-carol"; }, 5s);
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["head"]["contentType"], "error");
    EXPECT_EQ((*error)["body"]["error"], "server busy, retry");
    const auto waited = std::chrono::steady_clock::now() - sent;
    EXPECT_GE(waited, 400ms);
    EXPECT_LT(waited, 4s);
}

} // namespace
} // namespace vartalap::testing
