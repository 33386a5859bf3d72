// HeldMessages and refusal_for (message_router_core.hpp): what the message-router does with
// messages a session shard or group-router did not take, by hand-driven time.
#include "daemons/message_router/message_router_core.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vartalap::message_router {
namespace {

Envelope deliver(std::string id, std::string gateway = "ws-1") {
    Envelope e;
    e.kind = Kind::deliver;
    e.id = std::move(id);
    e.from = "alice";
    e.to = "bob";
    e.origin_gateway = std::move(gateway);
    e.connection = 42;
    e.flags = flag_wants_server_ack;
    return e;
}

TEST(HeldMessagesTest, SendsInOrderPerPeerUntilAPeerRefuses) {
    HeldMessages held(2, 3000);
    held.hold(0, deliver("a"), 0);
    held.hold(0, deliver("b"), 0);
    held.hold(1, deliver("c"), 0);
    EXPECT_TRUE(held.holding(0));
    EXPECT_EQ(held.size(), 3u);
    std::vector<std::string> sent;
    // Peer 0 takes one message, then is full; peer 1 takes everything.
    int room0 = 1;
    EXPECT_EQ(held.send([&](std::size_t peer, const Envelope& e) {
        if (peer == 0 && room0-- <= 0) return false;
        sent.push_back(std::to_string(peer) + e.id);
        return true;
    }), 2u);
    EXPECT_EQ(sent, (std::vector<std::string>{"0a", "1c"}));
    EXPECT_TRUE(held.holding(0));
    EXPECT_FALSE(held.holding(1));
    EXPECT_EQ(held.size(), 1u);
}

TEST(HeldMessagesTest, GivesUpOnlyWhatWaitedTheTimeoutInOrderPerPeer) {
    HeldMessages held(2, 3000);
    held.hold(0, deliver("old"), 1000);
    held.hold(0, deliver("young"), 2500);
    held.hold(1, deliver("other"), 1200);
    std::vector<std::string> given_up;
    auto give_up = [&](const Envelope& e) { given_up.push_back(e.id); };
    EXPECT_EQ(held.expire(3999, give_up), 0u); // nothing has waited 3 s yet
    EXPECT_EQ(held.expire(4000, give_up), 1u);
    EXPECT_EQ(given_up, (std::vector<std::string>{"old"}));
    EXPECT_EQ(held.expire(5500, give_up), 2u);
    EXPECT_EQ(given_up, (std::vector<std::string>{"old", "young", "other"})); // peer by peer
    EXPECT_EQ(held.size(), 0u);
    EXPECT_FALSE(held.holding(0));
}

TEST(RefusalTest, AClientMessageIsRefusedToItsSendersConnectionAsRetryable) {
    Envelope refusal;
    Envelope message = deliver("m1", "rest-1");
    message.request_id = 7;
    ASSERT_TRUE(refusal_for(message, refusal));
    EXPECT_EQ(refusal.kind, Kind::server_ack);
    EXPECT_EQ(refusal.status, Status::overloaded);
    EXPECT_EQ(refusal.error, kBusyRetry);
    EXPECT_EQ(refusal.id, "m1");
    EXPECT_EQ(refusal.origin_gateway, "rest-1");
    EXPECT_EQ(refusal.connection, 42u);
    EXPECT_EQ(refusal.request_id, 7u);

    Envelope group = deliver("g1");
    group.kind = Kind::group_message;
    group.flags |= flag_group;
    ASSERT_TRUE(refusal_for(group, refusal));
    EXPECT_EQ(refusal.channel, "group");
}

TEST(RefusalTest, AcksTypingAndMessagesWithoutAGatewayHaveNobodyToTell) {
    Envelope refusal;
    Envelope ack = deliver("a1");
    ack.kind = Kind::ack;
    EXPECT_FALSE(refusal_for(ack, refusal));
    Envelope typing = deliver("t1");
    typing.flags |= flag_ephemeral;
    EXPECT_FALSE(refusal_for(typing, refusal));
    EXPECT_FALSE(refusal_for(deliver("x", ""), refusal));
}

} // namespace
} // namespace vartalap::message_router
